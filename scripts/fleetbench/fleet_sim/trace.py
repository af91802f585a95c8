"""The simulated fleet's sizes and the seeded job trace (arrival times, lognormal durations)."""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Any

from supervisor.sim.comfyui.workflows import fake_work_workflow

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
