"""The processes of the simulation and its two dispatch modes: pull (fleetq) and push."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from fleetbench.fleet_sim.metrics import JobRecord, Metrics, handoff_gaps, metrics
from fleetbench.fleet_sim.trace import NAMESPACE, Sizes, TraceJob, workflow
from fleetbench.machine import cpu_seconds
from fleetbench.paths import ROOT
from fleetbench.processes import (
    Children,
    consecutive_free_ports,
    python_env,
    wait_for_port,
)
from fleetq import AsyncClient, Settings
from fleetq.model import JobState
from fleetq.records import PullerStatus

# -- the fleet ------------------------------------------------------------------------------------


@dataclass
class Fleet:
    """The fake ComfyUI processes (and, for pull, the supervisors) of one mode's run."""

    sizes: Sizes
    children: Children
    base: int
    src: Path = ROOT
    #: Each run gets its own namespace: the queue counters of earlier runs stay out of it.
    namespace: str = NAMESPACE
    supervisors: list[Any] = field(default_factory=list)
    #: Extra command-line arguments of every fake ComfyUI process (models, load time).
    fake_args: tuple[str, ...] = ()
    #: Extra environment of every supervisor (``FLEETQ_*`` settings of a policy).
    supervisor_env: dict[str, str] = field(default_factory=dict)

    @property
    def ports(self) -> list[int]:
        return [self.base + i for i in range(self.sizes.gpus)]

    def start_fakes(self) -> None:
        """Start the fake processes; on a port taken meanwhile, again on other ports."""
        for attempt in range(3):
            first = len(self.children.processes)
            try:
                self._start_fakes()
                return
            except RuntimeError:
                if attempt == 2:
                    raise
                Children(self.children.log_dir, self.children.processes[first:]).stop_all()
                del self.children.processes[first:]
                self.base = consecutive_free_ports(self.sizes.gpus)

    def _start_fakes(self) -> None:
        s = self.sizes
        per, extra = divmod(s.gpus, s.fake_processes)
        port = self.base
        for k in range(s.fake_processes):
            count = per + (1 if k < extra else 0)
            self.children.start(
                f"fake-comfyui-{k}",
                [sys.executable, "-m", "supervisor.sim.comfyui", "--port", str(port),
                 "--count", str(count), "--log-level", "WARNING", *self.fake_args],
                env=python_env(ROOT), cwd=ROOT,
            )  # fmt: skip
            port += count
        for p in self.ports:
            wait_for_port(p, 60, self.children)

    def start_supervisors(self, redis_url: str) -> None:
        s = self.sizes
        for h in range(s.hosts):
            base = self.base + h * s.gpus_per_host
            self.supervisors.append(
                self.children.start(
                    f"supervisor-{h:02d}",
                    [
                        sys.executable,
                        "-m",
                        "fleetq.cli.main",
                        "--redis",
                        redis_url,
                        "--namespace",
                        self.namespace,
                        "supervisor",
                        "--simulate-gpus",
                        str(s.gpus_per_host),
                        "--host-id",
                        host_name(h),
                        "--grace-s",
                        "5",
                        "--backend",
                        f"comfyui=http://127.0.0.1:{{port:{base}}}",
                        "--log-level",
                        "WARNING",
                    ],
                    env={**python_env(self.src), **self.supervisor_env},
                    cwd=self.src,
                )
            )

    def slot_port(self, host: str, gpu: int) -> int:
        h = int(host.rsplit("-", 1)[1])
        return self.base + h * self.sizes.gpus_per_host + gpu


def host_name(h: int) -> str:
    return f"sim-{h:02d}"


async def wait_online(client: AsyncClient, sizes: Sizes, children: Children) -> None:
    deadline = time.monotonic() + 120
    wanted = {host_name(h) for h in range(sizes.hosts)}
    while time.monotonic() < deadline:
        children.check_alive()
        fleet = await client.fleet()
        idle = {
            h.host
            for h in fleet.hosts
            if h.online
            and len(h.gpus) == sizes.gpus_per_host
            and all(g.status is PullerStatus.IDLE for g in h.gpus)
        }
        if idle >= wanted:
            return
        await asyncio.sleep(0.25)  # supervisors publish once a second; nothing to block on
    raise RuntimeError("the supervisors did not publish all their GPUs idle within 120 s")


async def fetch_history(session: aiohttp.ClientSession, ports: Sequence[int],
                        records: dict[int, JobRecord]) -> int:  # fmt: skip
    """Fill start, end and gpu of every record from the fakes' histories; returns how many
    executions did not end in success (interrupted or failed runs)."""
    unsuccessful = 0

    async def one(port: int) -> None:
        nonlocal unsuccessful
        url = f"http://127.0.0.1:{port}/history?max_items=1000000"
        async with session.get(url) as answer:
            history = await answer.json()
        for entry in history.values():
            graph = entry["prompt"][2]
            index = int(graph["2"]["inputs"]["seed"])
            stamps = {event: data.get("timestamp") for event, data in entry["status"]["messages"]}
            record = records.get(index)
            if record is None:
                continue
            record.runs += 1
            if "execution_success" not in stamps:
                unsuccessful += 1
                continue
            record.start = stamps["execution_start"] / 1000
            record.end = stamps["execution_success"] / 1000
            record.gpu = str(port)

    await asyncio.gather(*(one(p) for p in ports))
    return unsuccessful


async def sleep_until(t0: float, at_s: float) -> None:
    delay = t0 + at_s - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)  # the trace's arrival schedule


@dataclass
class ModeResult:
    mode: str
    scenario: str
    records: list[JobRecord]
    run_s: float
    cpu_share: float  # CPU of every process of the run, as a share of the machine
    late_s: float  # how far the submitter fell behind the trace at worst
    unsuccessful_runs: int
    backend: Metrics | None = None
    timeline: Metrics | None = None
    gaps_backend: list[float] = field(default_factory=list)
    gaps_timeline: list[float] = field(default_factory=list)


def cpu_total(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += cpu_seconds(psutil.Process(pid))
    return total


@dataclass
class RunClock:
    """Wall time and CPU time of every process of a mode, from the trace's start to its end."""

    pids: list[int]
    t0: float = 0.0
    cpu0: float = 0.0
    run_s: float = 0.0
    cpu_share: float = 0.0  # of the whole machine
    late_s: float = 0.0  # how far the submitter fell behind the trace at worst

    def start(self) -> float:
        self.cpu0, self.t0 = cpu_total(self.pids), time.monotonic()
        return self.t0

    def stop(self) -> None:
        self.run_s = time.monotonic() - self.t0
        used = cpu_total(self.pids) - self.cpu0
        self.cpu_share = used / self.run_s / (os.cpu_count() or 1)


async def wait_all_finished(
    client: AsyncClient, fleet: Fleet, total: int, timeout_s: float, what: str
) -> None:
    """Until ``total`` jobs have finished (completed, failed or cancelled); raises when
    ``timeout_s`` passes first or a child process died."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = await client.stats()
        done = stats.total("completed") + stats.total("failed") + stats.total("cancelled")
        if done >= total:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: only {done} of {total} jobs done in time")
        fleet.children.check_alive()
        await asyncio.sleep(0.1)  # the queue counters have no change feed to block on


async def read_timelines(
    client: AsyncClient, ids: dict[int, str], records: dict[int, JobRecord]
) -> int:
    """Fill each record's claims, last claim, finish and slot from its job's timeline;
    returns how many jobs did not complete."""
    failed = 0
    for index, job_id in ids.items():
        status = await client.status(job_id)
        record = records[index]
        record.claims = len(status.timeline)
        if status.state != JobState.COMPLETED or not status.timeline:
            failed += 1
            continue
        last = status.timeline[-1]
        record.claim = last.started_ms / 1000
        record.finish = (last.ended_ms or status.finished_ms or 0) / 1000
        record.slot = f"{last.host}:{last.gpu}"
    return failed


async def run_pull(
    trace: Sequence[TraceJob], sizes: Sizes, fleet: Fleet, redis_url: str,
    say: Callable[[str], None], timeout_s: float, clock: RunClock,
) -> dict[int, JobRecord]:  # fmt: skip
    """Submit the trace to fleetq at its arrival times and wait until every job is finished."""
    settings = Settings(redis_url=redis_url, namespace=fleet.namespace)
    client = AsyncClient(settings)
    records: dict[int, JobRecord] = {}
    ids: dict[int, str] = {}
    workflows = [workflow(j, sizes.steps) for j in trace]
    try:
        await wait_online(client, sizes, fleet.children)
        say(f"pull: {sizes.hosts} supervisors x {sizes.gpus_per_host} GPUs idle; submitting")
        t0 = clock.start()
        for job, wf in zip(trace, workflows, strict=True):
            await sleep_until(t0, job.at_s)
            clock.late_s = max(clock.late_s, time.monotonic() - t0 - job.at_s)
            arrival = time.time()
            handle = await client.submit(wf, timeout_s=600, max_attempts=3)
            ids[job.index] = handle.id
            records[job.index] = JobRecord(job.index, job.seconds, arrival)
        await wait_all_finished(client, fleet, len(trace), timeout_s, "pull")
        clock.stop()
        failed = await read_timelines(client, ids, records)
        if failed:
            say(f"pull: {failed} job(s) did not complete")
        return records
    finally:
        await client.aclose()


async def run_push(
    trace: Sequence[TraceJob], sizes: Sizes, fleet: Fleet, say: Callable[[str], None],
    timeout_s: float, clock: RunClock,
) -> dict[int, JobRecord]:  # fmt: skip
    """POST the trace round-robin to the instances at its arrival times (each queues what it
    gets, as behind nginx), following completions on one WebSocket per instance."""
    ports = fleet.ports
    records: dict[int, JobRecord] = {}
    pending: set[str] = set()
    all_done = asyncio.Event()
    submitted = asyncio.Event()
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        client_ids = {port: uuid.uuid4().hex for port in ports}
        sockets = [
            await session.ws_connect(f"ws://127.0.0.1:{port}/ws?clientId={client_ids[port]}")
            for port in ports
        ]

        async def follow(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                frame = message.json()
                data = frame.get("data") or {}
                if frame.get("type") == "executing" and data.get("node") is None:
                    pending.discard(data.get("prompt_id"))
                    if submitted.is_set() and not pending:
                        all_done.set()

        followers = [asyncio.create_task(follow(ws)) for ws in sockets]

        async def post(port: int, body: dict[str, Any], record: JobRecord) -> None:
            # The arrival is when the request leaves, as for fleetq's submit (in a burst the
            # posts queue in this client's loop for a moment first).
            record.arrival = time.time()
            try:
                async with session.post(f"http://127.0.0.1:{port}/prompt", json=body) as answer:
                    if answer.status != 200:
                        errors.append(f"{port}: HTTP {answer.status} {await answer.text()}")
                        pending.discard(body["prompt_id"])
            except aiohttp.ClientError as e:
                errors.append(f"{port}: {e!r}")
                pending.discard(body["prompt_id"])

        posts: list[asyncio.Task[None]] = []
        workflows = [workflow(j, sizes.steps) for j in trace]
        say(f"push: {len(ports)} instances, one WebSocket each; posting round-robin")
        t0 = clock.start()
        try:
            for job, wf in zip(trace, workflows, strict=True):
                await sleep_until(t0, job.at_s)
                clock.late_s = max(clock.late_s, time.monotonic() - t0 - job.at_s)
                port = ports[job.index % len(ports)]
                prompt_id = str(uuid.uuid4())
                pending.add(prompt_id)
                record = records[job.index] = JobRecord(job.index, job.seconds, math.nan)
                body = {"prompt": wf, "client_id": client_ids[port], "prompt_id": prompt_id}
                posts.append(asyncio.create_task(post(port, body, record)))
            await asyncio.gather(*posts)
            submitted.set()
            if not pending:
                all_done.set()
            try:
                await asyncio.wait_for(all_done.wait(), timeout_s)
            except asyncio.TimeoutError as e:
                raise RuntimeError(f"push: {len(pending)} prompts still running") from e
            clock.stop()
            if errors:
                say(f"push: {len(errors)} POST error(s), e.g. {errors[0]}")
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            for ws in sockets:
                await ws.close()
    return records


async def collect_history(ports: Sequence[int], records: dict[int, JobRecord]) -> int:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        return await fetch_history(session, ports, records)


def run_mode(
    mode: str, scenario: str, trace: Sequence[TraceJob], sizes: Sizes, redis_url: str,
    children: Children, say: Callable[[str], None], src: Path,
) -> ModeResult:  # fmt: skip
    """Start fresh fakes (and supervisors for pull), run the trace, stop them all."""
    base = consecutive_free_ports(sizes.gpus)
    fleet = Fleet(sizes, children, base, src, f"{NAMESPACE}-{scenario}-{mode}")
    first_child = len(children.processes)
    timeout_s = 300 + 20 * sizes.cap_s + sizes.span_s
    try:
        fleet.start_fakes()
        if mode == "pull":
            fleet.start_supervisors(redis_url)
        clock = RunClock([p.pid for _, p, _ in children.processes] + [os.getpid()])
        if mode == "pull":
            records = asyncio.run(run_pull(trace, sizes, fleet, redis_url, say, timeout_s, clock))
        else:
            records = asyncio.run(run_push(trace, sizes, fleet, say, timeout_s, clock))
        unsuccessful = asyncio.run(collect_history(fleet.ports, records))
    finally:
        # Stop this mode's processes (the redis-server, started first, stays).
        mine = children.processes[first_child:]
        del children.processes[first_child:]
        sub = Children(children.log_dir, mine)
        sub.stop_all()
    result = ModeResult(mode, scenario, list(records.values()), clock.run_s, clock.cpu_share,
                        clock.late_s, unsuccessful)  # fmt: skip
    say(f"{mode}/{scenario}: {len(records)} jobs in {clock.run_s:.1f} s, CPU "
        f"{100 * clock.cpu_share:.0f}% of the machine")  # fmt: skip
    return result


def analyse(result: ModeResult, sizes: Sizes, short_max_s: float) -> None:
    done = [r for r in result.records if not math.isnan(r.start)]
    missing = len(result.records) - len(done)
    if missing:
        raise RuntimeError(f"{result.mode}: {missing} job(s) have no successful run on record")
    result.backend = metrics([(r.arrival, r.start, r.end, r.seconds) for r in done], sizes.gpus,
                             short_max_s)  # fmt: skip
    result.gaps_backend = handoff_gaps(done, lambda r: r.start, lambda r: r.end, lambda r: r.gpu)
    if result.mode == "pull":
        timed = [r for r in done if not math.isnan(r.claim)]
        result.timeline = metrics(
            [(r.arrival, r.claim, r.finish, r.seconds) for r in timed], sizes.gpus, short_max_s
        )
        result.gaps_timeline = handoff_gaps(
            timed, lambda r: r.claim, lambda r: r.finish, lambda r: r.slot
        )
