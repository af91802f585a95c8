"""One run of the scheduling benchmark: fresh fakes with the checkpoints and a load time, the
supervisors under one scheduling policy, the trace submitted at its (scaled) arrival times,
ETA samples along the way, then every job's times read back."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from fleetbench.fleet_sim.fleet import (
    Fleet,
    RunClock,
    fetch_history,
    read_timelines,
    sleep_until,
    wait_all_finished,
    wait_online,
)
from fleetbench.fleet_sim.metrics import JobRecord
from fleetbench.fleet_sim.sched_trace import (
    SCHED_NAMESPACE,
    SchedJob,
    SchedSizes,
    checkpoint_name,
    sched_workflow,
)
from fleetbench.fleet_sim.trace import Sizes
from fleetbench.processes import Children, consecutive_free_ports
from fleetq import AsyncClient, Settings
from fleetq.model import JobState

SERVICE = "comfyui"
#: Submits of the flood in flight at once.
FLOOD_CONCURRENCY = 32
#: Queued jobs of the flood whose ETA is read at each sampling instant.
ETA_SAMPLES_PER_TICK = 6
#: Sampling instants: every this many simulated seconds while jobs are queued.
ETA_TICK_S = 10.0


#: Settings that are durations: a policy gives them on the simulated scale, the run scales them.
SCALED_SETTINGS = ("affinity_max_wait_s",)


@dataclass(frozen=True)
class Policy:
    """A scheduling policy: settings of fleetq (``Settings`` field -> value), given to the
    supervisors as ``FLEETQ_*`` variables and to the submitting client. Durations are on the
    simulated scale; those left out take fleetq's defaults, scaled too."""

    name: str
    settings: Mapping[str, Any]

    def scaled(self, time_scale: float) -> dict[str, Any]:
        """The settings for a run ``1 / time_scale`` times faster than simulated time."""
        out = dict(self.settings)
        defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
        missing = sorted(set(out) - set(defaults))
        if missing:
            raise SystemExit(
                f"policy {self.name}: this fleetq has no setting {', '.join(missing)} (the "
                "scheduling policies, docs/SCHEDULING.md, are not in this checkout)"
            )
        for name in SCALED_SETTINGS:
            if name in defaults:
                out[name] = round(float(out.get(name, defaults[name])) * time_scale, 3)
        return out

    def env(self, time_scale: float) -> dict[str, str]:
        def text(value: Any) -> str:
            return ("1" if value else "0") if isinstance(value, bool) else str(value)

        return {f"FLEETQ_{k.upper()}": text(v) for k, v in self.scaled(time_scale).items()}


@dataclass
class EtaSample:
    index: int
    asked_ms: int  # Redis clock, when the estimate was read
    start_ms: int
    finish_ms: int
    guess: bool  # no run time on record yet: the default run time was assumed


@dataclass
class SchedRecord:
    job: SchedJob
    record: JobRecord  # arrival, start/end on the fake (wall s), claim/finish (Redis clock)
    loaded: bool = False  # this run loaded its checkpoint first


@dataclass
class SchedResult:
    policy: str
    trace_name: str  # "flood" or "no flood"
    records: list[SchedRecord]
    run_s: float
    cpu_share: float
    late_s: float
    loads_reported: int  # the fakes' own count of model loads
    eta: list[EtaSample] = field(default_factory=list)
    eta_missing: int = 0  # queued jobs whose status gave no estimate


def fake_args(sizes: SchedSizes) -> tuple[str, ...]:
    args: list[str] = ["--model-load-seconds", f"{sizes.wall(sizes.load_s):g}"]
    for k in range(sizes.checkpoints):
        args += ["--checkpoint", checkpoint_name(k)]
    return tuple(args)


def fleet_sizes(sizes: SchedSizes) -> Sizes:
    """The plain simulation's sizes (what :class:`Fleet` reads) for these machines."""
    return Sizes(
        hosts=sizes.hosts, gpus_per_host=sizes.gpus_per_host,
        fake_processes=min(sizes.fake_processes, sizes.gpus), median_s=sizes.median_s,
        sigma=sizes.sigma, min_s=sizes.min_s, cap_s=sizes.cap_s, scenarios=(), load=0.0,
        span_s=sizes.span_s, burst_per_gpu=0,
    )  # fmt: skip


async def _submit_all(
    client: AsyncClient, trace: Sequence[SchedJob], sizes: SchedSizes, clock: RunClock,
    ids: dict[int, str], records: dict[int, JobRecord], eta: list[EtaSample],
    started: asyncio.Event,
) -> int:  # fmt: skip
    """Play the trace. The flood (every job at t=0) is submitted while the service is paused,
    FLOOD_CONCURRENCY submits in flight, so that it is all queued when the clock starts (the
    resume); then the rest at their times, each followed by a read of its ETA. Returns how
    many queued jobs had no estimate."""
    gate = asyncio.Semaphore(FLOOD_CONCURRENCY)

    async def submit(job: SchedJob, arrival: float | None = None) -> None:
        sent = time.time()
        handle = await client.submit(
            sched_workflow(job, sizes), priority=job.priority, tenant=job.tenant,
            timeout_s=600, max_attempts=3,
        )  # fmt: skip
        ids[job.index] = handle.id
        records[job.index] = JobRecord(job.index, job.seconds, sent if arrival is None else arrival)

    async def flood_one(job: SchedJob) -> None:
        async with gate:
            await submit(job)

    flood = [j for j in trace if j.at_s == 0]
    if flood:
        await client.pause(SERVICE)
        await asyncio.gather(*(flood_one(j) for j in flood))
    t0 = clock.start()
    if flood:
        await client.resume(SERVICE)
        for job in flood:  # they all arrive at the start
            records[job.index].arrival = time.time() - (time.monotonic() - t0)
    started.set()
    missing = 0
    for job in (j for j in trace if j.at_s > 0):
        await sleep_until(t0, sizes.wall(job.at_s))
        clock.late_s = max(clock.late_s, time.monotonic() - t0 - sizes.wall(job.at_s))
        await submit(job)
        missing += await _sample(client, [job.index], ids, eta)
    return missing


async def _sample(
    client: AsyncClient, indexes: Sequence[int], ids: Mapping[int, str], eta: list[EtaSample]
) -> int:
    missing = 0
    for index in indexes:
        status = await client.status(ids[index])
        if status.state is not JobState.QUEUED:
            continue
        if status.eta is None:
            missing += 1
            continue
        e = status.eta
        eta.append(EtaSample(index, e.now_ms, e.start_ms, e.finish_ms, e.guess))
    return missing


async def _sample_flood(
    client: AsyncClient, trace: Sequence[SchedJob], sizes: SchedSizes, ids: Mapping[int, str],
    eta: list[EtaSample], started: asyncio.Event, done: asyncio.Event, seed: int,
) -> int:  # fmt: skip
    """Every ETA_TICK_S (simulated) from the start, the ETA of a few random flood jobs still
    queued."""
    await started.wait()
    rng = random.Random(f"{seed}-eta")
    flood = [j.index for j in trace if j.at_s == 0]
    missing = 0
    while not done.is_set():
        ready = [i for i in flood if i in ids]
        if ready:
            missing += await _sample(client, rng.sample(ready, min(len(ready),
                                                                  ETA_SAMPLES_PER_TICK)),
                                     ids, eta)  # fmt: skip
        try:
            await asyncio.wait_for(done.wait(), sizes.wall(ETA_TICK_S))
        except asyncio.TimeoutError:
            continue
    return missing


async def run_trace(
    trace: Sequence[SchedJob], sizes: SchedSizes, fleet: Fleet, redis_url: str,
    policy: Policy, say: Callable[[str], None], timeout_s: float, clock: RunClock, seed: int,
) -> tuple[dict[int, JobRecord], list[EtaSample], int]:  # fmt: skip
    settings = Settings(redis_url=redis_url, namespace=fleet.namespace,
                        **policy.scaled(sizes.time_scale))  # fmt: skip
    client = AsyncClient(settings)
    records: dict[int, JobRecord] = {}
    ids: dict[int, str] = {}
    eta: list[EtaSample] = []
    done, started = asyncio.Event(), asyncio.Event()
    try:
        await wait_online(client, fleet.sizes, fleet.children)
        say(f"{policy.name}: {fleet.sizes.gpus} GPUs idle; submitting {len(trace)} jobs")
        sampler = asyncio.create_task(
            _sample_flood(client, trace, sizes, ids, eta, started, done, seed), name="eta-sampler"
        )
        missing = await _submit_all(client, trace, sizes, clock, ids, records, eta, started)
        await wait_all_finished(client, fleet, len(trace), timeout_s, policy.name)
        clock.stop()
        done.set()
        missing += await sampler
        failed = await read_timelines(client, ids, records)
        if failed:
            say(f"{policy.name}: {failed} job(s) did not complete")
        return records, eta, missing
    finally:
        done.set()
        await client.aclose()


async def _collect(ports: Sequence[int], records: dict[int, JobRecord]) -> tuple[int, int]:
    """Fill the records from the fakes' histories; the fakes' own count of model loads."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        unsuccessful = await fetch_history(session, ports, records)

        async def loads(port: int) -> int:
            async with session.get(f"http://127.0.0.1:{port}/fake/state") as answer:
                return int((await answer.json())["model_loads"])

        counts = await asyncio.gather(*(loads(p) for p in ports))
    return unsuccessful, sum(counts)


def mark_loads(records: Sequence[SchedRecord]) -> None:
    """A run loads its checkpoint when the instance ran another one (or none) before it."""
    by_gpu: dict[str, list[SchedRecord]] = {}
    for r in records:
        if not math.isnan(r.record.start):
            by_gpu.setdefault(r.record.gpu, []).append(r)
    for runs in by_gpu.values():
        runs.sort(key=lambda r: r.record.start)
        previous = None
        for r in runs:
            r.loaded = r.job.checkpoint != previous
            previous = r.job.checkpoint


def run_policy(
    policy: Policy, trace_name: str, trace: Sequence[SchedJob], sizes: SchedSizes,
    redis_url: str, children: Children, say: Callable[[str], None], src: Path, seed: int,
) -> SchedResult:  # fmt: skip
    """Start fresh fakes and supervisors under ``policy``, run the trace, stop them all."""
    base = consecutive_free_ports(sizes.gpus)
    tag = trace_name.replace(" ", "")
    name = f"{SCHED_NAMESPACE}-{policy.name.replace('+', '-').replace('/', '-')}-{tag}"
    fleet = Fleet(fleet_sizes(sizes), children, base, src, name, fake_args=fake_args(sizes),
                  supervisor_env=policy.env(sizes.time_scale))  # fmt: skip
    first_child = len(children.processes)
    timeout_s = 300 + sizes.wall(20 * sizes.cap_s + sizes.span_s + 40 * sizes.load_s)
    try:
        fleet.start_fakes()
        fleet.start_supervisors(redis_url)
        clock = RunClock([p.pid for _, p, _ in children.processes] + [os.getpid()])
        records, eta, missing = asyncio.run(
            run_trace(trace, sizes, fleet, redis_url, policy, say, timeout_s, clock, seed)
        )
        unsuccessful, loads_reported = asyncio.run(_collect(fleet.ports, records))
        if unsuccessful:
            say(f"{policy.name}: {unsuccessful} execution(s) did not succeed")
    finally:
        mine = children.processes[first_child:]
        del children.processes[first_child:]
        Children(children.log_dir, mine).stop_all()
    by_index = {j.index: j for j in trace}
    result = SchedResult(
        policy.name, trace_name,
        [SchedRecord(by_index[i], r) for i, r in sorted(records.items())],
        clock.run_s, clock.cpu_share, clock.late_s, loads_reported, eta, missing,
    )  # fmt: skip
    mark_loads(result.records)
    say(f"{policy.name} ({trace_name}): {len(records)} jobs in {clock.run_s:.1f} s wall, CPU "
        f"{100 * clock.cpu_share:.0f}% of the machine, {loads_reported} model loads")  # fmt: skip
    return result


#: The policies the benchmark knows; the first one is the baseline of the targets.
POLICIES = {
    "fifo": Policy("fifo", {"affinity": False, "fair_share": False}),
    "affinity": Policy("affinity", {"fair_share": False}),
    "fair": Policy("fair", {"affinity": False}),
    "affinity+fair": Policy("affinity+fair", {}),
    # A longer bound on how much later a job passing another over may have arrived: what a
    # steady stream of arrivals would gain from it (the flood arrives at once either way).
    "affinity+fair/wait600": Policy("affinity+fair/wait600", {"affinity_max_wait_s": 600.0}),
}
DEFAULT_POLICIES = ("fifo", "affinity+fair")
