"""The faults a chaos run injects: kills, pauses, stalls, restarts, XIDs, zombies, and the
operators' cancels and bumps."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from fleetbench.chaos.options import SERVICE, ZOMBIE_HOST
from fleetbench.chaos.state import ChaosState, Request, retry_unavailable
from fleetbench.chaos.workload import ChaosEvent
from fleetq.errors import (
    InvalidTransition,
    JobNotFound,
    RedisUnavailable,
    StaleLease,
)
from fleetq.model import ClaimedJob, FaultKind, JobError, Output
from fleetq.records import GpuHealth
from fleetq.worker import WorkerQueue


class FaultInjectors(ChaosState):
    """The scheduled faults and operator actions; each records what it did for the checks."""

    def _recent_job(self, u: float, window: int = 40) -> str | None:
        if not self.accepted:
            return None
        recent = self.accepted[-window:]
        return recent[int(u * len(recent))].job_id

    async def _cancel(self, event: ChaosEvent) -> None:
        job_id = self._recent_job(event.get("u"))
        if job_id is None:
            return
        self.counts["cancel_requests"] += 1
        try:
            reply = await self.client.cancel(job_id, by="chaos")
        except InvalidTransition:
            reply = "terminal"
        except JobNotFound:
            reply = "missing"
        except RedisUnavailable:
            reply = "unknown"
        self.counts[f"cancel_{reply}"] += 1
        self.cancels[job_id].append(Request(time.time(), reply))

    async def _bump(self, event: ChaosEvent) -> None:
        job_id = self._recent_job(event.get("u"), window=80)
        if job_id is None:
            return
        priority = int(event.get("priority"))
        self.counts["bump_requests"] += 1
        try:
            await self.client.bump(job_id, priority)
            reply = "applied"
        except InvalidTransition:
            reply = "refused"
        except JobNotFound:
            reply = "missing"
        except RedisUnavailable:
            reply = "unknown"
        self.counts[f"bump_{reply}"] += 1
        self.bumps[job_id].append(Request(time.time(), reply, priority))

    async def _guard(
        self, action: Callable[[ChaosEvent], Awaitable[None]], event: ChaosEvent
    ) -> None:
        try:
            await action(event)
        except Exception as e:  # a harness fault must not hide behind the chaos
            self.violation(f"harness: {event.kind} at {event.at_s} s raised {e!r}")

    def _pick_supervisor(self, target: int) -> int | None:
        n = self.o.supervisors
        for k in [(target + i) % n for i in range(n)]:
            process = self.fleet.supervisors[k]
            if k not in self.restarting and process is not None and process.poll() is None:
                return k
        return None

    async def _kill_supervisor(self, event: ChaosEvent, term: bool) -> None:
        k = self._pick_supervisor(int(event.get("target")))
        if k is None:
            self.counts["supervisor_kill_skipped"] += 1
            return
        process = self.fleet.supervisors[k]
        assert process is not None
        self.restarting.add(k)
        try:
            if term:
                self.counts["supervisor_sigterm"] += 1
                process.send_signal(signal.SIGTERM)
                try:
                    code = await asyncio.to_thread(process.wait, 30)
                except subprocess.TimeoutExpired:
                    self.violation(f"supervisor {self.fleet.host(k)} hung 30 s after SIGTERM")
                    process.kill()
                    code = await asyncio.to_thread(process.wait)
                if code not in (0, -signal.SIGTERM):  # -SIGTERM: before its handlers were set
                    self.violation(f"supervisor {self.fleet.host(k)} exited {code} on SIGTERM")
            else:
                self.counts["supervisor_sigkill"] += 1
                process.kill()
                await asyncio.to_thread(process.wait)
            await asyncio.sleep(event.get("down_s"))  # the machine stays down a while
            self.fleet.start_supervisor(k)
            self.counts["supervisor_restarts"] += 1
        finally:
            self.restarting.discard(k)

    async def _pause_supervisor(self, event: ChaosEvent) -> None:
        k = self._pick_supervisor(int(event.get("target")))
        if k is None:
            self.counts["supervisor_pause_skipped"] += 1
            return
        process = self.fleet.supervisors[k]
        assert process is not None
        self.restarting.add(k)
        stopped = time.time()
        try:
            process.send_signal(signal.SIGSTOP)
            self.counts["supervisor_sigstop"] += 1
            await asyncio.sleep(event.get("pause_s"))  # frozen past its leases
        finally:
            process.send_signal(signal.SIGCONT)
            self.pauses.append((k, stopped, time.time()))
            self.restarting.discard(k)

    async def _kill_redis(self, event: ChaosEvent) -> None:
        if self.redis_down:
            self.counts["redis_kill_skipped"] += 1
            return
        self.redis_down = True
        server = self.fleet.redis
        try:
            killed = time.time()
            server.kill()
            self.redis_kills.append(killed)
            self.counts["redis_sigkill"] += 1
            if server.process is not None and server.process.stderr is not None:
                server.process.stderr.close()
            await asyncio.sleep(event.get("down_s"))  # Redis stays down a while
            starting = time.time()
            await asyncio.to_thread(server.start, 60.0)
            now = time.time()
            self.redis_outages.append((killed, now))
            self.redis_down_s += now - killed
            self.redis_reload_max_s = max(self.redis_reload_max_s, now - starting)
        finally:
            self.redis_down = False

    async def _stall_redis(self, event: ChaosEvent) -> None:
        """Freeze Redis (DEBUG SLEEP) longer than every client's socket timeout: commands in
        flight time out and are resent, and both copies run once Redis wakes up."""
        if self.redis_down or self.stalling:
            self.counts["redis_stall_skipped"] += 1
            return
        self.stalling = True
        r = redis.Redis(port=self.fleet.redis.port, socket_timeout=self.o.stall_s + 30)
        started = time.time()
        try:
            await asyncio.to_thread(r.execute_command, "DEBUG", "SLEEP", f"{self.o.stall_s:g}")
            self.counts["redis_stalls"] += 1
        except redis.exceptions.RedisError:  # a Redis kill cut it short
            self.counts["redis_stall_cut"] += 1
        finally:
            r.close()
            self.stalls.append((started, time.time()))
            self.redis_outages.append((started, time.time()))
            self.stalling = False

    async def _restart_fake(self, event: ChaosEvent, reason: str = "fake_restarts") -> None:
        port = self.fleet.port(int(event.get("target")), int(event.get("gpu")))
        await self._post_restart(port, event.get("delay_s"))
        self.counts[reason] += 1

    async def _post_restart(self, port: int, delay_s: float) -> None:
        url = f"http://127.0.0.1:{port}/fake/restart"
        async with self.http.post(url, json={"delay_s": delay_s}) as answer:
            if answer.status != 200:
                raise RuntimeError(f"POST {url} answered {answer.status}")

    async def _control(self, host: str, gpu: int, spec: str) -> None:
        command = {"type": "fault", "gpu": gpu, "spec": spec}

        async def send() -> str:
            return await asyncio.to_thread(self.sync_client.send_control, host, command)

        await retry_unavailable(send)

    async def _xid(self, event: ChaosEvent) -> None:
        """XID 79 (fallen off the bus) on one GPU; the puller must stop claiming there until
        the operator clears it. The GPU's published health must turn unhealthy."""
        k, gpu = int(event.get("target")), int(event.get("gpu"))
        host = self.fleet.host(k)
        await self._control(host, gpu, "xid=79")
        sent = time.time()
        self.counts["xid_sent"] += 1
        loop = asyncio.get_running_loop()
        clear_at = loop.time() + event.get("clear_after_s")
        observed = False
        while loop.time() < clear_at:
            if not observed:
                with contextlib.suppress(RedisUnavailable):
                    observed = await self._gpu_unhealthy(host, gpu)
                    self.counts["xid_observed"] += observed
            await asyncio.sleep(min(0.25, max(0.0, clear_at - loop.time())))  # health is
            # published once a second; there is no event to wait on
        cleared = time.time()
        await self._control(host, gpu, "clear")
        self.counts["xid_clears"] += 1
        self.xid_windows.append((k, gpu, sent, cleared))

    async def _gpu_unhealthy(self, host: str, gpu: int) -> bool:
        for view in (await self.client.fleet()).hosts:
            if view.host == host and view.online:
                for record in view.gpus:
                    if record.index == gpu and record.health is not GpuHealth.HEALTHY:
                        return True
        return False

    async def _zombie(self, event: ChaosEvent) -> None:
        """Claim a job, freeze (no renewals) until the reaper took the lease back, then try
        every write with the stale token: at once, while someone else runs it, and after it
        ended. Every one must be refused."""
        queue = WorkerQueue(self.settings)
        gpu = int(event.get("gpu"))
        try:
            job: ClaimedJob | None = None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while job is None and loop.time() < deadline:
                # A blocking claim, woken by submits like any idle puller's.
                wait_s = max(0.1, min(2.0, deadline - loop.time()))
                try:
                    job = (await queue.claim([SERVICE], ZOMBIE_HOST, gpu, wait_s)).job
                except RedisUnavailable:
                    await asyncio.sleep(0.2)  # Redis is down: a reconnect backoff
            if job is None:
                self.counts["zombie_skipped"] += 1
                return
            self.counts["zombie_claims"] += 1
            self.zombie_jobs[job.id] = time.time()
            phases = [
                ("reaped", lambda s: s.state.value != "running" or s.claims != job.claims),
                ("reclaimed", lambda s: s.state.value != "queued" and s.claims > job.claims),
                ("ended", lambda s: s.is_terminal),
            ]
            for name, reached in phases:
                if await self._wait_status(job.id, reached, timeout_s=60):
                    await self._stale_writes(queue, job, name)
        finally:
            await queue.aclose()

    async def _wait_status(
        self, job_id: str, reached: Callable[[Any], bool], timeout_s: float
    ) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            try:
                status = await self.client.status(job_id)
                if reached(status):
                    return True
                if status.is_terminal:
                    return False  # it ended without passing through this phase
            except RedisUnavailable:
                pass
            except JobNotFound:
                return False
            await asyncio.sleep(0.1)  # polling one job's state; test code, not the hot path
        return False

    async def _stale_writes(self, queue: WorkerQueue, job: ClaimedJob, phase: str) -> None:
        junk = [Output("zombie.png", "image/png", b"not a png, written by a zombie")]
        error = JobError("Zombie", "a stale worker reports a failure", kind=FaultKind.JOB)
        writes: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("renew", lambda: queue.renew(job, 0.5, "zombie")),
            ("complete", lambda: queue.complete(job, junk)),
            ("fail", lambda: queue.fail(job, FaultKind.JOB, error)),
            ("fail-infra", lambda: queue.fail(job, FaultKind.INFRA, error)),
            ("ack_cancel", lambda: queue.ack_cancel(job)),
        ]
        for name, write in writes:
            try:
                await retry_unavailable(write)
            except StaleLease:
                self.counts["zombie_refused"] += 1
                continue
            self.counts["zombie_accepted"] += 1
            self.violation(
                f"job {job.id}: a zombie's {name} with a stale token was accepted ({phase})"
            )

    # -- watchers ----------------------------------------------------------------------------
