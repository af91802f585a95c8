"""The scheduling benchmark's sizes and seeded trace: checkpoints of skewed popularity, a model
load time, heavy-tailed job lengths, two priority bands and two tenants, one of them flooding.

Every time here is on the simulated (real-world) scale; the run plays it ``time_scale`` times
faster (a 10 s load takes 10 x time_scale s on the fakes), so that 240 GPUs fit on a small
machine. The report converts measured wall times back to the simulated scale.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from supervisor.sim.comfyui.workflows import checkpoint_work_workflow

SCHED_HEADING = "## Fleet simulation: scheduling (scripts/bench_fleet_sim.py --scheduling)"
E2E_HEADING = (
    "## Scheduling end to end at real time (scripts/bench_fleet_sim.py --scheduling --e2e)"
)
SCHED_NAMESPACE = "benchsched"
FLOOD, SMALL = "studio", "webapp"
TOP_PRIORITY, NORMAL_PRIORITY = 10, 0


@dataclass(frozen=True)
class SchedSizes:
    hosts: int
    gpus_per_host: int
    fake_processes: int
    checkpoints: int
    zipf_s: float  # popularity of checkpoint k (1-based) is proportional to k ** -zipf_s
    load_s: float  # model load time
    median_s: float  # job length: lognormal with this median ...
    sigma: float  # ... and this sigma of the log ...
    min_s: float  # ... clipped to [min_s, cap_s]
    cap_s: float
    flood_per_gpu: int  # the flooding tenant: this many jobs per GPU, all at the start
    small_jobs: int  # the small tenant: Poisson arrivals over span_s
    top_jobs: int  # top priority band: Poisson arrivals over span_s, from both tenants
    span_s: float
    time_scale: float  # wall seconds per simulated second

    @property
    def gpus(self) -> int:
        return self.hosts * self.gpus_per_host

    def wall(self, simulated_s: float) -> float:
        return simulated_s * self.time_scale


SCHED_FULL = SchedSizes(
    hosts=6, gpus_per_host=40, fake_processes=4, checkpoints=20, zipf_s=1.0, load_s=10.0,
    median_s=5.0, sigma=1.0, min_s=1.0, cap_s=60.0, flood_per_gpu=10, small_jobs=240,
    top_jobs=240, span_s=150.0, time_scale=0.2,
)  # fmt: skip
#: The shorter end-to-end run: a small fleet at real time (no scaling), to check that the
#: time-scaled figures carry over.
SCHED_E2E = SchedSizes(
    hosts=2, gpus_per_host=8, fake_processes=2, checkpoints=6, zipf_s=1.0, load_s=10.0,
    median_s=5.0, sigma=1.0, min_s=1.0, cap_s=30.0, flood_per_gpu=12, small_jobs=24,
    top_jobs=24, span_s=90.0, time_scale=1.0,
)  # fmt: skip
SCHED_QUICK = SchedSizes(
    hosts=2, gpus_per_host=8, fake_processes=1, checkpoints=6, zipf_s=1.0, load_s=10.0,
    median_s=5.0, sigma=1.0, min_s=1.0, cap_s=30.0, flood_per_gpu=6, small_jobs=16,
    top_jobs=16, span_s=60.0, time_scale=0.05,
)  # fmt: skip


@dataclass(frozen=True)
class SchedJob:
    index: int
    at_s: float  # arrival, simulated seconds after the start
    seconds: float  # run time on the GPU after any model load (simulated)
    checkpoint: str
    tenant: str
    priority: int


def checkpoint_name(k: int) -> str:
    return f"ckpt_{k:02d}.safetensors"


def popularity(sizes: SchedSizes) -> list[float]:
    weights = [(k + 1) ** -sizes.zipf_s for k in range(sizes.checkpoints)]
    total = sum(weights)
    return [w / total for w in weights]


def _duration(sizes: SchedSizes, rng: random.Random) -> float:
    d = rng.lognormvariate(math.log(sizes.median_s), sizes.sigma)
    return round(min(sizes.cap_s, max(sizes.min_s, d)), 3)


def _poisson_times(count: int, span_s: float, rng: random.Random) -> list[float]:
    return sorted(round(rng.uniform(0, span_s), 3) for _ in range(count))


def make_sched_trace(sizes: SchedSizes, seed: int) -> list[SchedJob]:
    """The flood (``flood_per_gpu`` per GPU at t=0, normal priority, tenant ``FLOOD``), the
    small tenant's jobs and the top-priority jobs (half from each tenant), both spread
    uniformly (a Poisson process conditioned on its count) over ``span_s``; each job draws a
    checkpoint by popularity and a length. Ordered by arrival."""
    rng = random.Random(f"{seed}-sched")
    names = [checkpoint_name(k) for k in range(sizes.checkpoints)]
    weights = popularity(sizes)
    drafts: list[tuple[float, str, int]] = []
    drafts += [(0.0, FLOOD, NORMAL_PRIORITY)] * (sizes.flood_per_gpu * sizes.gpus)
    drafts += [
        (t, SMALL, NORMAL_PRIORITY) for t in _poisson_times(sizes.small_jobs, sizes.span_s, rng)
    ]
    drafts += [
        (t, FLOOD if i % 2 else SMALL, TOP_PRIORITY)
        for i, t in enumerate(_poisson_times(sizes.top_jobs, sizes.span_s, rng))
    ]
    drafts.sort(key=lambda d: d[0])  # stable: the flood first, in its own order
    jobs = []
    for index, (at, tenant, priority) in enumerate(drafts):
        checkpoint = rng.choices(names, weights)[0]
        jobs.append(SchedJob(index, at, _duration(sizes, rng), checkpoint, tenant, priority))
    return jobs  # fmt: skip


def without_flood(trace: list[SchedJob]) -> list[SchedJob]:
    """The same trace with the flood's jobs left out (the small tenant's baseline)."""
    return [j for j in trace if not (j.tenant == FLOOD and j.priority == NORMAL_PRIORITY)]


def sched_workflow(job: SchedJob, sizes: SchedSizes) -> dict[str, Any]:
    return checkpoint_work_workflow(
        job.checkpoint, round(sizes.wall(job.seconds), 4), 1, seed=job.index,
        filename_prefix="sched",
    )  # fmt: skip
