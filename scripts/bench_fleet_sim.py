"""Fleet simulation: fleetq's pull dispatch against round-robin push, on one fixed job trace.

The fleet is 30 machines x 8 GPUs = 240 simulated GPUs (by default) in front of 240 fake
ComfyUI instances, all on this machine. Each mode runs the same seeded trace (arrival times and
job durations) against freshly started fake ComfyUI processes:

- pull (fleetq): a private redis-server, 6 ``fleetq supervisor`` processes of 40 simulated GPUs
  each (240 pullers, each bound to its own fake instance), and the trace submitted with
  ``fleetq.AsyncClient.submit`` at each job's arrival time;
- push (what nginx round-robin in front of N ComfyUI does): the same workflows POSTed to
  ``/prompt`` of instance ``i mod 240`` at arrival time, where they queue in the instance's own
  prompt queue; one WebSocket per instance (the client's ``clientId``) follows completions.

Every job is a FakeWork workflow (EmptyImage -> FakeWork -> SaveImage) whose ``seconds`` is the
job's duration and whose ``seed`` is its index in the trace. After each mode, ``GET /history``
of every instance gives when each job started and ended on its GPU (the ``execution_start`` and
``execution_success`` timestamps the fake records, in ms); fleetq's job timelines
(``status().timeline``) give the claim and finish times as well. See ``metrics()`` for how the
idle-while-waiting share is computed.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_fleet_sim.py            # full run, about 6 minutes
    .venv/bin/python scripts/bench_fleet_sim.py --quick    # smoke run, under a minute
    .venv/bin/python scripts/bench_fleet_sim.py --write    # also update docs/BENCHMARKS.md

The markdown goes to stdout; ``--write`` replaces the section "Fleet simulation" of
docs/BENCHMARKS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # run as a script from a checkout
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import aiohttp  # noqa: E402
import psutil  # noqa: E402
from fleetbench.docs import command_line, write_doc  # noqa: E402
from fleetbench.machine import cpu_seconds, machine_facts  # noqa: E402
from fleetbench.paths import BENCHMARKS_DOC  # noqa: E402
from fleetbench.processes import (  # noqa: E402
    Children,
    consecutive_free_ports,
    python_env,
    start_redis,
    wait_for_port,
)

from fleetq import AsyncClient, Settings  # noqa: E402
from fleetq.model import JobState  # noqa: E402
from supervisor.fakes.comfyui.workflows import fake_work_workflow  # noqa: E402

DOC = BENCHMARKS_DOC
HEADING = "## Fleet simulation: pull vs round-robin push (scripts/bench_fleet_sim.py)"
NAMESPACE = "benchsim"
IDLE_TARGET_PCT = 1.0
SHORT_QUANTILE = 0.5  # "short" jobs: at most the median duration of the trace


@dataclass(frozen=True)
class Sizes:
    hosts: int  # supervisor processes (machines)
    gpus_per_host: int
    fake_processes: int  # processes serving the fake ComfyUI instances
    median_s: float  # job durations: lognormal with this median ...
    sigma: float  # ... and this shape (sigma of the log)
    min_s: float  # ... clipped to [min_s, cap_s]
    cap_s: float
    scenarios: tuple[str, ...]  # "steady" and/or "burst"
    load: float  # steady: offered load, as a share of the fleet's capacity
    span_s: float  # steady: seconds of arrivals
    burst_per_gpu: int  # burst: jobs per GPU, all submitted at once
    steps: int = 2  # progress frames per job (FakeWork ``steps``)

    @property
    def gpus(self) -> int:
        return self.hosts * self.gpus_per_host


FULL = Sizes(
    hosts=6,
    gpus_per_host=40,
    fake_processes=4,
    median_s=1.0,
    sigma=1.2,
    min_s=0.05,
    cap_s=20.0,
    scenarios=("steady", "burst"),
    load=0.9,
    span_s=60.0,
    burst_per_gpu=10,
)
QUICK = Sizes(hosts=2, gpus_per_host=8, fake_processes=1, median_s=0.25, sigma=1.0, min_s=0.05,
              cap_s=2.0, scenarios=("burst",), load=0.9, span_s=5.0, burst_per_gpu=3)  # fmt: skip


# -- the trace ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceJob:
    index: int
    at_s: float  # arrival, seconds after the start of the trace
    seconds: float  # how long it runs on its GPU


def lognormal_mean(sizes: Sizes, rng: random.Random, n: int = 200_000) -> float:
    """The mean of the clipped lognormal, by sampling (the clip has no closed form worth it)."""
    draws = (draw_duration(sizes, rng) for _ in range(n))
    return statistics.fmean(draws)


def draw_duration(sizes: Sizes, rng: random.Random) -> float:
    d = rng.lognormvariate(math.log(sizes.median_s), sizes.sigma)
    return round(min(sizes.cap_s, max(sizes.min_s, d)), 3)


def make_trace(sizes: Sizes, scenario: str, seed: int) -> tuple[list[TraceJob], float]:
    """The seeded trace of a scenario, and the offered job rate (jobs/s; 0 for a burst)."""
    rng = random.Random(f"{seed}-{scenario}")
    if scenario == "burst":
        count = sizes.burst_per_gpu * sizes.gpus
        return [TraceJob(i, 0.0, draw_duration(sizes, rng)) for i in range(count)], 0.0
    mean = lognormal_mean(sizes, random.Random(f"{seed}-mean"))
    rate = sizes.load * sizes.gpus / mean
    jobs: list[TraceJob] = []
    at = 0.0
    while True:
        at += rng.expovariate(rate)
        if at >= sizes.span_s:
            return jobs, rate
        jobs.append(TraceJob(len(jobs), round(at, 4), draw_duration(sizes, rng)))


def workflow(job: TraceJob, steps: int) -> dict[str, Any]:
    return fake_work_workflow(job.seconds, steps, seed=job.index, filename_prefix="sim")


# -- per-job records and the metrics --------------------------------------------------------------


@dataclass
class JobRecord:
    index: int
    seconds: float
    arrival: float  # wall clock (s) just before the submit / POST
    start: float = math.nan  # wall clock (s): execution_start on the fake
    end: float = math.nan  # execution_success on the fake
    gpu: str = ""  # the fake instance's port
    claim: float = math.nan  # fleetq: the claim (timeline started_ms)
    finish: float = math.nan  # fleetq: the finish (timeline ended_ms)
    slot: str = ""  # fleetq: host:gpu from the timeline
    claims: int = 0  # fleetq: how many times it was claimed
    runs: int = 0  # how many executions the fakes recorded for it


@dataclass(frozen=True)
class Metrics:
    jobs: int
    gpus: int
    makespan_s: float
    #: GPU-seconds in which a GPU was idle while at least one job waited (anywhere).
    idle_while_waiting_gpu_s: float
    #: The same, but at each moment at most as many idle GPUs as jobs waiting are counted.
    idle_usable_gpu_s: float
    waiting_s: float  # time during which at least one job waited
    busy_gpu_s: float
    short_wait_p50_s: float
    short_wait_p95_s: float
    wait_p95_s: float
    wait_max_s: float

    @property
    def idle_share(self) -> float:
        """Idle GPU-seconds while a job waited, over all GPU-seconds of the makespan."""
        return self.idle_while_waiting_gpu_s / (self.gpus * self.makespan_s)

    @property
    def usable_share(self) -> float:
        """Idle GPU-seconds that waiting jobs could have used, over all GPU-seconds."""
        return self.idle_usable_gpu_s / (self.gpus * self.makespan_s)

    @property
    def utilization(self) -> float:
        return self.busy_gpu_s / (self.gpus * self.makespan_s)

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.makespan_s


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in 0..1."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def metrics(
    jobs: Sequence[tuple[float, float, float, float]], gpus: int, short_max_s: float
) -> Metrics:
    """``jobs``: (arrival, start, end, duration) per job, wall-clock seconds.

    A job waits from its arrival to its start; a GPU is busy from a job's start to its end.
    Sweeping every arrival, start and end in time order, between consecutive events with W jobs
    waiting and B GPUs busy: if W > 0, the interval adds ``(gpus - B) * length`` to the
    idle-while-waiting GPU-seconds, and ``min(W, gpus - B) * length`` to the usable ones (idle
    GPUs that waiting jobs could have occupied). Shares divide by ``gpus * makespan``; the
    makespan runs from the first arrival to the last end.
    """
    events: list[tuple[float, int, int]] = []  # (time, d_waiting, d_busy)
    for arrival, start, end, _ in jobs:
        events += [(arrival, 1, 0), (start, -1, 1), (end, 0, -1)]
    events.sort(key=lambda e: (e[0], -e[2]))  # at equal times, ends before starts
    waiting = busy = 0
    idle_ww = usable = waiting_s = busy_s = 0.0
    last = events[0][0]
    for t, d_wait, d_busy in events:
        span = t - last
        if span > 0:
            busy_s += busy * span
            if waiting > 0:
                idle = max(0, gpus - busy)
                waiting_s += span
                idle_ww += idle * span
                usable += min(waiting, idle) * span
        waiting += d_wait
        busy += d_busy
        last = t
    first = min(j[0] for j in jobs)
    makespan = max(j[2] for j in jobs) - first
    waits = [start - arrival for arrival, start, _, _ in jobs]
    short = [start - arrival for arrival, start, _, d in jobs if d <= short_max_s]
    return Metrics(
        jobs=len(jobs),
        gpus=gpus,
        makespan_s=makespan,
        idle_while_waiting_gpu_s=idle_ww,
        idle_usable_gpu_s=usable,
        waiting_s=waiting_s,
        busy_gpu_s=busy_s,
        short_wait_p50_s=percentile(short, 0.5),
        short_wait_p95_s=percentile(short, 0.95),
        wait_p95_s=percentile(waits, 0.95),
        wait_max_s=max(waits),
    )


def handoff_gaps(
    records: Sequence[JobRecord], start: Callable[[JobRecord], float],
    end: Callable[[JobRecord], float], gpu: Callable[[JobRecord], str],
) -> list[float]:  # fmt: skip
    """Per GPU, the time from the end of one job to the start of its next job, counted only
    where that next job had already arrived when the previous one ended (so the GPU could have
    started it at once): the per-job dispatch overhead."""
    by_gpu: dict[str, list[JobRecord]] = {}
    for r in records:
        by_gpu.setdefault(gpu(r), []).append(r)
    gaps: list[float] = []
    for runs in by_gpu.values():
        runs.sort(key=start)
        for prev, nxt in itertools.pairwise(runs):
            if nxt.arrival <= end(prev):
                gaps.append(start(nxt) - end(prev))
    return gaps


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
                [sys.executable, "-m", "supervisor.fakes.comfyui", "--port", str(port),
                 "--count", str(count), "--log-level", "WARNING"],
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
                    env=python_env(self.src),
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
            and all(g.get("status") == "idle" for g in h.gpus)
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
        deadline = time.monotonic() + timeout_s
        while True:
            stats = await client.stats()
            done = stats.total("completed") + stats.total("failed") + stats.total("cancelled")
            if done >= len(trace):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"pull: only {done} of {len(trace)} jobs done in time")
            fleet.children.check_alive()
            await asyncio.sleep(0.1)  # the queue counters have no change feed to block on
        clock.stop()
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


# -- report ---------------------------------------------------------------------------------------


@dataclass
class Report:
    sizes: Sizes
    command: str
    seed: int
    src: str = ""
    facts: dict[str, str] = field(default_factory=dict)
    scenarios: dict[str, tuple[list[TraceJob], float]] = field(default_factory=dict)
    results: list[ModeResult] = field(default_factory=list)

    def mean_seconds(self, scenario: str) -> float:
        return statistics.fmean(j.seconds for j in self.scenarios[scenario][0])

    def trace_line(self, scenario: str) -> str:
        trace, rate = self.scenarios[scenario]
        d = [j.seconds for j in trace]
        work = sum(d)
        shape = (
            f"{len(trace):,} jobs submitted at once ({self.sizes.burst_per_gpu} per GPU)"
            if scenario == "burst"
            else f"{len(trace):,} jobs arriving as a Poisson process over "
            f"{self.sizes.span_s:g} s at {rate:.1f} jobs/s ({100 * self.sizes.load:.0f}% of "
            "the fleet's capacity)"
        )
        return (
            f"- **{scenario}**: {shape}; durations p50 {percentile(d, 0.5):.2f} s, mean "
            f"{statistics.fmean(d):.2f} s, p95 {percentile(d, 0.95):.2f} s, p99 "
            f"{percentile(d, 0.99):.2f} s, max {max(d):.2f} s; {work:,.0f} GPU-seconds of work "
            f"({work / self.sizes.gpus:.1f} s per GPU)."
        )

    def markdown(self) -> str:
        s, f = self.sizes, self.facts
        lines = [
            HEADING,
            "",
            f"Measured {f['date']} on {f['cpus']} CPUs ({f['cpu']}), {f['os']}, Python "
            f"{f['python']}, redis-server {f['redis_server']}, redis-py {f['redis_py']}, aiohttp "
            f"{f['aiohttp']}, fleetq at commit {f['commit']}. Load average (1 min) "
            f"{f['load_before']} at the start, {f.get('load_after', '?')} at the end, run time "
            f"{f.get('run_s', '?')} s: the machine is shared with other engineers.",
            "",
            "Reproduce (from the repository root):",
            "",
            "```sh",
            self.command,
            "```",
            "",
            f"**What runs.** {s.gpus} simulated GPUs ({s.hosts} machines x {s.gpus_per_host} "
            f"GPUs) in front of {s.gpus} fake ComfyUI instances on consecutive ports, served by "
            f"{s.fake_processes} processes, all on this {f['cpus']}-CPU machine. "
            f"Pull: a private redis-server and {s.hosts} `fleetq supervisor --simulate-gpus "
            f"{s.gpus_per_host}` processes (default settings, {s.gpus} pullers, each bound to "
            "its own instance); the trace is submitted with `AsyncClient.submit` at each job's "
            "arrival time. Push (what an nginx round-robin balancer in front of N ComfyUI "
            "does): the same workflows are POSTed to `/prompt` of instance `i mod "
            f"{s.gpus}` at arrival time and queue in that instance's prompt queue; one "
            "WebSocket per instance (the client's `clientId`) follows the completions. Each "
            "mode starts fresh fake processes; the supervisors run only in pull mode. One "
            "submitter (this script, one asyncio loop) plays the trace in both modes."
            + (f" Supervisor source: `{self.src}`." if self.src else ""),
            "",
            f"**The trace** (seed {self.seed}): FakeWork workflows (EmptyImage -> FakeWork "
            f"with {s.steps} progress steps -> SaveImage), durations lognormal with median "
            f"{s.median_s:g} s and sigma {s.sigma:g}, clipped to {s.min_s:g}..{s.cap_s:g} s: "
            "most jobs short, a few long. Real ComfyUI jobs take 10 s to minutes; the "
            "durations are scaled down so that the whole fleet fits on this machine. Shorter "
            f"jobs (the issue suggested a median of 0.3 s) would need about {s.gpus} x 0.9 / "
            "0.65 s = 330 jobs/s, more than two cores give the supervisors, the fakes and Redis "
            "together (about 5-6 ms of CPU per job, measured), and a saturated machine would "
            "measure its own queueing, not the dispatch.",
            "",
        ]
        lines += [self.trace_line(sc) for sc in self.scenarios]
        short = {sc: percentile([j.seconds for j in tr], SHORT_QUANTILE)
                 for sc, (tr, _) in self.scenarios.items()}  # fmt: skip
        lines += [
            "",
            "### Results",
            "",
            "| scenario | dispatch | jobs | GPU idle while work waits | of it usable by the "
            "waiting jobs | makespan s | jobs/s | utilization | short-job wait p50 s | "
            "short-job wait p95 s | wait p95 s (all) | wait max s | CPU used |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.results:
            rows = [(r.backend, "fleetq pull" if r.mode == "pull" else "round-robin push")]
            if r.timeline is not None:
                rows.append((r.timeline, "fleetq pull, by its timelines (claim to finish)"))
            for m, label in rows:
                assert m is not None
                lines.append(
                    f"| {r.scenario} | {label} | {m.jobs:,} | {100 * m.idle_share:.2f}% | "
                    f"{100 * m.usable_share:.2f}% | {m.makespan_s:.1f} | {m.jobs_per_s:.1f} | "
                    f"{100 * m.utilization:.1f}% | {m.short_wait_p50_s:.3f} | "
                    f"{m.short_wait_p95_s:.3f} | {m.wait_p95_s:.2f} | {m.wait_max_s:.2f} | "
                    f"{100 * r.cpu_share:.0f}% |"
                )
        lines += [
            "",
            "GPU idle while work waits: the share of all GPU-seconds (GPUs x makespan) in which "
            "a GPU was idle while at least one job waited anywhere (the issue's definition). "
            "Of it usable by the waiting jobs: the same, but at each moment counting at most as "
            "many idle GPUs as there were jobs waiting (with 1 job in flight and 200 GPUs idle, "
            "1, not 200). Short jobs: those at most the trace's median duration ("
            + ", ".join(f"{sc} {v:.2f} s" for sc, v in short.items())
            + "). CPU used: every process of the mode (fakes, supervisors, redis-server, the "
            "submitter) over the run, as a share of the whole machine.",
            "",
            "### Targets",
            "",
            "| target | scenario | result | measured (by the backends' execution times) |",
            "|---|---|---|---|",
        ]
        for r in self.results:
            if r.mode != "pull" or r.backend is None:
                continue
            m = r.backend
            for name, value in (
                ("GPU idle while work waits", m.idle_share),
                ("idle GPU-seconds usable by waiting jobs", m.usable_share),
            ):
                ok = 100 * value <= IDLE_TARGET_PCT
                lines.append(
                    f"| fleetq: {name} <= {IDLE_TARGET_PCT:g}% | {r.scenario} | "
                    f"{'met' if ok else 'missed'} | {100 * value:.2f}% |"
                )
        lines += [
            "",
            "### Dispatch overhead per job",
            "",
            "Per GPU, the time from the end of one job to the start of its next job, counted "
            "only where that next job had already arrived when the previous one ended (so the "
            "GPU could have started it at once). For fleetq this is its whole hand-over: the "
            "adapter reads the history and downloads the output, the job is completed in Redis, "
            "the puller checks its gate (GPU health, drained/paused, two HTTP probes of the "
            "backend), claims, renews and POSTs the next prompt. For push it is ComfyUI's own "
            "queue hand-over.",
            "",
            "| scenario | dispatch | measured on | gaps | p50 ms | p95 ms | mean ms |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for r in self.results:
            rows = [(r.gaps_backend, "the backend (execution end to next execution start)")]
            if r.mode == "pull":
                rows.append((r.gaps_timeline, "the timelines (finish to next claim)"))
            label = "fleetq pull" if r.mode == "pull" else "round-robin push"
            for gaps, where in rows:
                if gaps:
                    lines.append(
                        f"| {r.scenario} | {label} | {where} | {len(gaps):,} | "
                        f"{1000 * percentile(gaps, 0.5):.1f} | {1000 * percentile(gaps, 0.95):.1f}"
                        f" | {1000 * statistics.fmean(gaps):.1f} |"
                    )
                else:
                    lines.append(f"| {r.scenario} | {label} | {where} | 0 | - | - | - |")
        pulls = [r for r in self.results if r.mode == "pull" and r.gaps_backend]
        if pulls:
            lost = ", ".join(
                f"{self.mean_seconds(r.scenario):.1f} s on average ({r.scenario}) lose "
                f"{statistics.fmean(r.gaps_backend) / self.mean_seconds(r.scenario):.1%}"
                for r in pulls
            )
            real = ", ".join(
                f"{statistics.fmean(r.gaps_backend) / 20:.2%} ({r.scenario})" for r in pulls
            )
            lines += [
                "",
                "A hand-over is about 11 sequential round trips (3 HTTP calls to finish a job, "
                "the GPU check on the NVML thread, the gate's Redis call, 2 parallel HTTP "
                "probes, the claim, the renew, the POST) through event loops that serve "
                f"{self.sizes.gpus_per_host} GPUs each, so it grows with CPU contention on this "
                "shared 2-core machine and varies between runs. Its cost is relative to the job "
                "length: at the mean gaps above, "
                f"jobs of {lost} of a busy GPU's time to hand-overs; jobs of 20 s (a real "
                f"ComfyUI scale) would lose {real}.",
            ]
        lines += [
            "",
            "### Method",
            "",
            "- **Timestamps.** Every job's workflow carries its trace index as the FakeWork "
            "`seed`. Arrival: the submitter's wall clock just before `submit` (pull) or the "
            "POST (push). Start and end on the GPU: the `execution_start` and "
            "`execution_success` timestamps (ms, wall clock) in the history entry of the fake "
            "ComfyUI instance that ran it (`GET /history` of all instances after the run), the "
            "same source for both modes; the instance is the GPU. For fleetq, each job's "
            "timeline (`status().timeline`, last attempt: `started_ms` at the claim, "
            "`ended_ms` at the finish, on the Redis clock) gives the second row: a GPU counts "
            "as busy from the claim to the finish, which puts fleetq's own per-job work (POST, "
            "WebSocket, history, output download) inside the busy time. All processes share "
            "one host clock.",
            "- **GPU idle while work waits.** A job waits from its arrival to its start; a GPU "
            "is busy from a job's start to its end. Sweep every arrival, start and end in time "
            "order; between consecutive events, with W jobs waiting and B GPUs busy, if W > 0 "
            "add (GPUs - B) x the length of the interval, and min(W, GPUs - B) x the length to "
            "the usable share. Each sum is divided by GPUs x makespan (first arrival to last "
            "end). In push mode this is head-of-line blocking: a GPU that ran out of its own "
            "queue sits idle while other instances still hold queued prompts. In pull mode it "
            "is the time a job spends between its submit and its start on a GPU (claim, POST) "
            "while other GPUs are idle, and, with a queue, the dispatch gap between jobs.",
            "- **Wait** = start - arrival (the start on the GPU); short jobs: at most the "
            "trace's median duration. **Makespan**: first arrival to last end; **jobs/s** = "
            "jobs / makespan; **utilization** = busy GPU-seconds / (GPUs x makespan).",
            "- The submitter fell behind the trace's schedule by at most "
            + ", ".join(f"{r.late_s * 1000:.0f} ms ({r.mode}, {r.scenario})" for r in self.results)
            + "; arrivals are the actual submit times, so this does not bias the waits.",
        ]
        extra = [r for r in self.results if r.unsuccessful_runs]
        if extra:
            lines.append(
                "- Executions that did not succeed (interrupted or failed, then retried): "
                + ", ".join(f"{r.mode}/{r.scenario} {r.unsuccessful_runs}" for r in extra)
                + "."
            )
        lines.append("")
        return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small fleet, one short burst (< 60 s)")
    p.add_argument("--hosts", type=int, help="supervisor processes (default 6)")
    p.add_argument("--gpus-per-host", type=int, help="simulated GPUs per supervisor (default 40)")
    p.add_argument("--fake-processes", type=int, help="processes serving the fakes (default 4)")
    p.add_argument("--median", type=float, help="median job duration, s (default 1.0)")
    p.add_argument("--sigma", type=float, help="lognormal sigma of durations (default 1.2)")
    p.add_argument("--cap", type=float, help="longest job, s (default 20)")
    p.add_argument("--scenarios", help="comma-separated: steady, burst (default both)")
    p.add_argument("--load", type=float, help="steady: offered load (default 0.9)")
    p.add_argument("--span", type=float, help="steady: seconds of arrivals (default 60)")
    p.add_argument("--burst-per-gpu", type=int, help="burst: jobs per GPU (default 10)")
    p.add_argument("--modes", default="pull,push", help="comma-separated: pull, push")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--supervisor-src",
        type=Path,
        metavar="DIR",
        help="run the supervisors from this source tree (default: this checkout)",
    )
    p.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    return p.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    overrides: dict[str, Any] = {
        "hosts": args.hosts, "gpus_per_host": args.gpus_per_host,
        "fake_processes": args.fake_processes, "median_s": args.median, "sigma": args.sigma,
        "cap_s": args.cap, "load": args.load, "span_s": args.span,
        "burst_per_gpu": args.burst_per_gpu,
        "scenarios": tuple(x.strip() for x in args.scenarios.split(",")) if args.scenarios
        else None,
    }  # fmt: skip
    sizes = Sizes(**{**sizes.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    src = (args.supervisor_src or ROOT).resolve()
    if set(modes) - {"pull", "push"} or set(sizes.scenarios) - {"steady", "burst"}:
        raise SystemExit("--modes takes pull,push; --scenarios takes steady,burst")
    sizes = Sizes(**{**sizes.__dict__, "fake_processes": min(sizes.fake_processes, sizes.gpus)})

    def say(message: str) -> None:
        print(f"[bench-fleet] {message}", file=sys.stderr, flush=True)

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    report = Report(sizes, command_line(argv, Path(__file__)), args.seed,
                    "" if src == ROOT else str(src))  # fmt: skip
    for scenario in sizes.scenarios:
        report.scenarios[scenario] = make_trace(sizes, scenario, args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="fleetq-bench-fleet-"))
    children = Children(tmp)
    started = time.perf_counter()
    ok = False
    try:
        redis_port = start_redis(children, tmp)
        report.facts = machine_facts(redis_port)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        for scenario in sizes.scenarios:
            trace, _ = report.scenarios[scenario]
            short_max = percentile([j.seconds for j in trace], SHORT_QUANTILE)
            for mode in modes:
                say(f"{mode}/{scenario}: {len(trace)} jobs on {sizes.gpus} GPUs")
                result = run_mode(mode, scenario, trace, sizes, redis_url, children, say, src)
                analyse(result, sizes, short_max)
                report.results.append(result)
        ok = True
    finally:
        children.stop_all()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            say(f"logs kept in {tmp}")
    report.facts["load_after"] = f"{os.getloadavg()[0]:.1f}"
    report.facts["run_s"] = f"{time.perf_counter() - started:.0f}"
    section = report.markdown()
    print(section)
    if args.write:
        write_doc(section, HEADING)
        say(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
