"""Per-job records of a mode and the metrics computed from them (waits, idle-while-waiting)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
