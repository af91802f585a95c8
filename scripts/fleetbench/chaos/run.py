"""The run loop: submit the workload, play the chaos schedule, drain, collect."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

from fleetbench.chaos.faults import FaultInjectors
from fleetbench.chaos.options import SERVICE
from fleetbench.chaos.state import Accepted, retry_unavailable
from fleetbench.chaos.workload import ChaosEvent, JobPlan
from fleetq import AsyncClient, Client
from fleetq.errors import (
    RedisUnavailable,
)


class ChaosRun(FaultInjectors):
    """Submits the jobs, plays the schedule, watches the fleet and drains it."""

    async def run(self) -> None:
        async with AsyncClient(self.settings) as client, aiohttp.ClientSession() as http:
            self.client, self.http = client, http
            self.sync_client = Client(self.settings)
            try:
                await self._wait_online()
                await self._main()
            finally:
                self.sync_client.close()

    async def _wait_online(self, timeout_s: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        wanted = {self.fleet.host(k) for k in range(self.o.supervisors)}
        while True:
            view = await self.client.fleet()
            online = {h.host for h in view.hosts if h.online}
            if wanted <= online:
                return
            if loop.time() > deadline:
                raise RuntimeError(
                    f"supervisors not online after {timeout_s:g} s: {sorted(wanted - online)}"
                )
            await asyncio.sleep(0.2)  # fleet records are published once a second

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        watchers = [
            asyncio.create_task(self._watch_supervisors()),
            asyncio.create_task(self._janitor()),
            asyncio.create_task(self._report_progress(started)),
        ]
        try:
            submitter = asyncio.create_task(self._submitter(started))
            await self._run_schedule(started)
            await submitter
            self.timings["submit_s"] = loop.time() - started
            await self._settle()
            drain_started = loop.time()
            await self._drain()
            self.timings["drain_s"] = loop.time() - drain_started
            self.timings["run_s"] = loop.time() - started
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self._collect_history()

    async def _settle(self) -> None:
        """Wait for every chaos action, restarts they scheduled included."""
        while True:
            pending = [task for task in self.tasks if not task.done()]
            if not pending and not self.restarting and not self.redis_down:
                return
            await asyncio.gather(*pending)
            await asyncio.sleep(0.1)  # the watcher may schedule a restart meanwhile

    # -- load and operators ------------------------------------------------------------------

    async def _submitter(self, started: float) -> None:
        loop = asyncio.get_running_loop()
        for plan in self.plans:
            delay = started + plan.index * self.o.submit_s / self.o.jobs - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the submit pace of the workload
            await self._submit(plan)

    async def _submit(self, plan: JobPlan) -> None:
        timeout_s = self.o.hang_timeout_s if plan.kind == "hang" else self.o.ok_timeout_s
        while True:
            sent = time.time()
            try:
                job = await self.client.submit(
                    plan.workflow(),
                    SERVICE,
                    plan.priority,
                    max_attempts=self.o.max_attempts,
                    timeout_s=timeout_s,
                    metadata={"chaos": plan.index},
                    idempotency_key=f"chaos-{self.o.seed}-{plan.index}",
                )
            except RedisUnavailable:
                self.counts["submit_retries"] += 1
                await asyncio.sleep(0.1)  # Redis is down: retry (the key makes it idempotent)
                continue
            self.accepted.append(Accepted(plan, job.id, sent, time.time()))
            return

    # -- the chaos ---------------------------------------------------------------------------

    async def _run_schedule(self, started: float) -> None:
        loop = asyncio.get_running_loop()
        actions: dict[str, Callable[[ChaosEvent], Awaitable[None]]] = {
            "supervisor_kill": lambda e: self._kill_supervisor(e, term=False),
            "supervisor_term": lambda e: self._kill_supervisor(e, term=True),
            "supervisor_pause": self._pause_supervisor,
            "redis_kill": self._kill_redis,
            "fake_restart": self._restart_fake,
            "xid": self._xid,
            "cancel": self._cancel,
            "bump": self._bump,
            "zombie": self._zombie,
            "redis_stall": self._stall_redis,
        }
        for event in self.schedule:
            delay = started + event.at_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the chaos schedule
            self.tasks.append(asyncio.create_task(self._guard(actions[event.kind], event)))

    async def _watch_supervisors(self) -> None:
        """A supervisor that exits without being told to is a violation; it is restarted.
        (Before commit 200272d one started while Redis was down exited with status 1.)"""
        while True:
            await asyncio.sleep(0.5)  # checking child processes; there is no event to wait on
            for k, process in enumerate(self.fleet.supervisors):
                if k in self.restarting or process is None or process.poll() is None:
                    continue
                self.violation(
                    f"supervisor {self.fleet.host(k)} exited by itself with {process.returncode}"
                )
                self.fleet.start_supervisor(k)

    async def _janitor(self) -> None:
        """An operator restarts a ComfyUI instance that has been running a prompt nobody owns
        (its supervisor was killed mid-job) for two looks in a row: a hung prompt would block
        that GPU forever, since a supervisor never interrupts a prompt it did not submit."""
        suspects: dict[int, str] = {}
        while True:
            await asyncio.sleep(2.0)  # a periodic look, as an operator would take
            try:
                running = await self.client.jobs("running", SERVICE, limit=1000)
            except RedisUnavailable:
                continue
            owned = {(s.host, s.gpu) for s in running}
            for k in range(self.o.supervisors):
                for gpu in range(self.o.gpus):
                    port = self.fleet.port(k, gpu)
                    try:
                        async with self.http.get(f"http://127.0.0.1:{port}/fake/state") as a:
                            state = await a.json()
                    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                        suspects.pop(port, None)
                        continue
                    prompt = state["running"][0] if state["running"] else None
                    if prompt is None or (self.fleet.host(k), gpu) in owned:
                        suspects.pop(port, None)
                    elif suspects.get(port) == prompt:
                        suspects.pop(port)
                        await self._post_restart(port, 0.0)
                        self.counts["orphan_restarts"] += 1
                    else:
                        suspects[port] = prompt

    async def _report_progress(self, started: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(5.0)  # a progress line every five seconds
            try:
                stats = await self.client.stats()
            except RedisUnavailable:
                continue
            s = next(x for x in stats.services if x.service == SERVICE)
            c = self.counts
            self.say(
                f"{loop.time() - started:5.0f} s: submitted {len(self.accepted)}, queued "
                f"{s.queued}, running {s.running}, completed {s.completed}, failed {s.failed}, "
                f"cancelled {s.cancelled} | kills {c['supervisor_sigkill']}+"
                f"{c['supervisor_sigterm']}, redis {c['redis_sigkill']}, fakes "
                f"{c['fake_restarts']}+{c['orphan_restarts']}, xid {c['xid_sent']}, zombies "
                f"{c['zombie_claims']}"
            )

    # -- the drain ---------------------------------------------------------------------------

    async def _drain(self) -> None:
        """No more chaos: every process up, every GPU cleared; wait until nothing is queued,
        delayed or running."""
        for k in range(self.o.supervisors):
            process = self.fleet.supervisors[k]
            if process is None or process.poll() is not None:
                self.fleet.start_supervisor(k)
            for gpu in range(self.o.gpus):
                await self._control(self.fleet.host(k), gpu, "clear")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.o.drain_timeout_s
        self.say("drain: chaos stopped; waiting for the fleet to finish every job")
        while True:
            stats = await retry_unavailable(self.client.stats)
            s = next(x for x in stats.services if x.service == SERVICE)
            leases = await retry_unavailable(
                lambda: self.client.store.command("zcard", self.client.store.keys.leases)
            )
            if s.queued == 0 and s.running == 0 and int(leases) == 0:
                return
            if loop.time() > deadline:
                self.violation(
                    f"drain: after {self.o.drain_timeout_s:g} s {s.queued} jobs "
                    f"still queued and {s.running} running"
                )
                return
            await asyncio.sleep(0.5)  # the drain is watched, not waited on

    async def _collect_history(self) -> None:
        """Each instance's own ``/history`` (since its last restart), to cross-check the logs."""
        for k in range(self.o.supervisors):
            for gpu in range(self.o.gpus):
                port = self.fleet.port(k, gpu)
                async with self.http.get(f"http://127.0.0.1:{port}/history") as answer:
                    self.history[port] = await answer.json()
