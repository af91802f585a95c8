"""What the scheduling benchmark reports of one run, on the simulated time scale: model loads,
GPU time spent loading, makespan, waits per priority band and per tenant, and the ETA's error."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetbench.fleet_sim.metrics import percentile
from fleetbench.fleet_sim.sched_run import SchedRecord, SchedResult
from fleetbench.fleet_sim.sched_trace import SchedSizes


@dataclass(frozen=True)
class Waits:
    jobs: int
    p50_s: float
    p95_s: float
    max_s: float


@dataclass(frozen=True)
class EtaError:
    samples: int
    missing: int
    guessed: int  # estimates made before any run time was on record (left out of the errors)
    #: Estimated minus actual start (simulated s): the median (bias), and quantiles of |error|.
    start_bias_s: float
    start_abs_p50_s: float
    start_abs_p90_s: float
    #: |error| over the wait that was left when the estimate was made (jobs that waited >= 1 s).
    start_rel_p50: float
    start_rel_p90: float
    finish_abs_p50_s: float
    finish_abs_p90_s: float


@dataclass(frozen=True)
class SchedMetrics:
    jobs: int
    gpus: int
    loads: int
    loads_reported: int
    load_gpu_s: float
    busy_gpu_s: float
    makespan_s: float
    #: The first arrival to the end of the last job that arrived at t=0 (the flood).
    flood_makespan_s: float
    by_band: dict[int, Waits]
    by_tenant: dict[str, Waits]
    #: Per (tenant, priority): the wait to the execution's start on the fake, and to the claim
    #: (the queue alone, without the dispatch to the backend).
    by_tenant_band: dict[tuple[str, int], Waits]
    claim_by_tenant_band: dict[tuple[str, int], Waits]
    #: Per priority and per tenant, the wait to the claim (the queue alone).
    claim_by_band: dict[int, Waits]
    claim_by_tenant: dict[str, Waits]
    #: When the first job ended (simulated s after the first arrival), and per tenant the wait
    #: to the claim of the jobs that arrived after it: before it, every GPU may be running its
    #: first job, and a job first in line still waits for one of them to end.
    first_end_s: float
    claim_by_tenant_after_first_end: dict[str, Waits]
    eta: EtaError | None

    @property
    def loads_per_1000(self) -> float:
        return 1000 * self.loads / self.jobs

    @property
    def load_share(self) -> float:
        """GPU time spent loading, over all GPU busy time."""
        return self.load_gpu_s / self.busy_gpu_s if self.busy_gpu_s else math.nan


def _waits(records: Sequence[SchedRecord], scale: float, to_claim: bool = False) -> Waits:
    waits = [((r.record.claim if to_claim else r.record.start) - r.record.arrival) / scale
             for r in records]  # fmt: skip
    if not waits:
        return Waits(0, math.nan, math.nan, math.nan)
    return Waits(len(waits), percentile(waits, 0.5), percentile(waits, 0.95), max(waits))


def _group(records: Sequence[SchedRecord], key: Callable[[SchedRecord], object],
           scale: float, to_claim: bool = False) -> dict:  # type: ignore[type-arg]  # fmt: skip
    groups: dict[object, list[SchedRecord]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return {k: _waits(v, scale, to_claim)
            for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}  # fmt: skip


def eta_error(result: SchedResult, scale: float) -> EtaError | None:
    by_index = {r.job.index: r for r in result.records}
    start_err: list[float] = []
    rel: list[float] = []
    finish_err: list[float] = []
    guessed = sum(1 for s in result.eta if s.guess)
    for sample in result.eta:
        if sample.guess:
            continue
        r = by_index.get(sample.index)
        if r is None or math.isnan(r.record.claim):
            continue
        actual_start_ms = r.record.claim * 1000
        err = (sample.start_ms - actual_start_ms) / 1000 / scale
        start_err.append(err)
        left = (actual_start_ms - sample.asked_ms) / 1000 / scale
        if left >= 1.0:
            rel.append(abs(err) / left)
        if not math.isnan(r.record.finish):
            finish_err.append(abs(sample.finish_ms - r.record.finish * 1000) / 1000 / scale)
    if not start_err:
        return None
    absolute = [abs(e) for e in start_err]
    return EtaError(
        samples=len(start_err), missing=result.eta_missing, guessed=guessed,
        start_bias_s=statistics.median(start_err),
        start_abs_p50_s=percentile(absolute, 0.5), start_abs_p90_s=percentile(absolute, 0.9),
        start_rel_p50=percentile(rel, 0.5), start_rel_p90=percentile(rel, 0.9),
        finish_abs_p50_s=percentile(finish_err, 0.5),
        finish_abs_p90_s=percentile(finish_err, 0.9),
    )  # fmt: skip


def sched_metrics(result: SchedResult, sizes: SchedSizes) -> SchedMetrics:
    scale = sizes.time_scale
    done = [r for r in result.records if not math.isnan(r.record.start)]
    missing = len(result.records) - len(done)
    if missing:
        raise RuntimeError(f"{result.policy}: {missing} job(s) have no successful run on record")
    loads = sum(r.loaded for r in done)
    first = min(r.record.arrival for r in done)
    last = max(r.record.end for r in done)
    busy = sum(r.record.end - r.record.start for r in done) / scale
    first_end = min(r.record.end for r in done)
    at_start = [r.record.end for r in done if r.job.at_s == 0]
    later = [r for r in done if r.record.arrival > first_end]
    return SchedMetrics(
        jobs=len(done), gpus=sizes.gpus, loads=loads, loads_reported=result.loads_reported,
        load_gpu_s=loads * sizes.load_s, busy_gpu_s=busy, makespan_s=(last - first) / scale,
        flood_makespan_s=(max(at_start) - first) / scale if at_start else math.nan,
        by_band=_group(done, lambda r: r.job.priority, scale),
        by_tenant=_group(done, lambda r: r.job.tenant, scale),
        by_tenant_band=_group(done, lambda r: (r.job.tenant, r.job.priority), scale),
        claim_by_tenant_band=_group(done, lambda r: (r.job.tenant, r.job.priority), scale,
                                    to_claim=True),
        claim_by_band=_group(done, lambda r: r.job.priority, scale, to_claim=True),
        claim_by_tenant=_group(done, lambda r: r.job.tenant, scale, to_claim=True),
        first_end_s=(first_end - first) / scale,
        claim_by_tenant_after_first_end=_group(later, lambda r: r.job.tenant, scale,
                                               to_claim=True),
        eta=eta_error(result, scale),
    )  # fmt: skip
