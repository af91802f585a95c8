"""The scheduling benchmark's markdown section of docs/BENCHMARKS.md."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from fleetbench.fleet_sim.metrics import percentile
from fleetbench.fleet_sim.sched_metrics import SchedMetrics, Waits
from fleetbench.fleet_sim.sched_run import ETA_TICK_S, SchedResult
from fleetbench.fleet_sim.sched_trace import (
    FLOOD,
    NORMAL_PRIORITY,
    SCHED_HEADING,
    SMALL,
    TOP_PRIORITY,
    SchedJob,
    SchedSizes,
    popularity,
)

BASELINE = "fifo"
TARGET_LOADS_X = 3.0
TARGET_MAKESPAN_CUT = 0.20
TARGET_SMALL_X = 2.0


def _ratio(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}"


def _secs(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.0f}"


def _w(w: Waits | None) -> str:
    if w is None or w.jobs == 0:
        return "-"
    return f"{w.p50_s:.1f} / {w.p95_s:.1f}"


@dataclass
class SchedReport:
    sizes: SchedSizes
    command: str
    seed: int
    trace: list[SchedJob]
    policies: dict[str, dict[str, object]]
    heading: str = SCHED_HEADING
    facts: dict[str, str] = field(default_factory=dict)
    runs: list[tuple[SchedResult, SchedMetrics]] = field(default_factory=list)

    def run(
        self, policy: str, trace_name: str = "flood"
    ) -> tuple[SchedResult, SchedMetrics] | None:
        return next(
            (x for x in self.runs if x[0].policy == policy and x[0].trace_name == trace_name), None
        )

    # -- text -------------------------------------------------------------------------------------

    def _trace_text(self) -> str:
        s, t = self.sizes, self.trace
        lengths = [j.seconds for j in t]
        shares = popularity(s)
        flood = sum(1 for j in t if j.tenant == FLOOD and j.priority == NORMAL_PRIORITY)
        return (
            f"**The trace** (seed {self.seed}; simulated seconds): {len(t):,} jobs. Tenant "
            f"`{FLOOD}` floods: {flood:,} jobs ({s.flood_per_gpu} per GPU) at t=0, priority "
            f"{NORMAL_PRIORITY}. Tenant `{SMALL}`: {s.small_jobs} jobs at priority "
            f"{NORMAL_PRIORITY} spread uniformly at random over the first {s.span_s:g} s. The "
            f"top band: {s.top_jobs} jobs at priority {TOP_PRIORITY} (half from each tenant) "
            f"over the same span. Each job uses one of {s.checkpoints} checkpoints drawn by a "
            f"Zipf popularity (exponent {s.zipf_s:g}: the top one {100 * shares[0]:.0f}% of jobs, "
            f"the top five {100 * sum(shares[:5]):.0f}%, the last {100 * shares[-1]:.1f}%), "
            f"loading one takes {s.load_s:g} s, and its run after the load is lognormal with "
            f"median {s.median_s:g} s and sigma {s.sigma:g}, clipped to {s.min_s:g}..{s.cap_s:g}"
            f" s (p50 {percentile(lengths, 0.5):.1f} s, mean {statistics.fmean(lengths):.1f} s, "
            f"p95 {percentile(lengths, 0.95):.1f} s, max {max(lengths):.1f} s)."
        )

    def _policy_text(self) -> str:
        parts = []
        for name, settings in self.policies.items():
            given = ", ".join(f"`{k}={v}`" for k, v in settings.items()) or "the defaults"
            parts.append(f"`{name}`: {given}")
        return "; ".join(parts)

    def markdown(self) -> str:
        s, f = self.sizes, self.facts
        lines = [
            self.heading,
            "",
            f"Measured {f['date']} on {f['cpus']} CPUs ({f['cpu']}), {f['os']}, Python "
            f"{f['python']}, redis-server {f['redis_server']}, redis-py {f['redis_py']}, fleetq "
            f"at commit {f['commit']}. Load average (1 min) {f['load_before']} at the start, "
            f"{f.get('load_after', '?')} at the end, run time {f.get('run_s', '?')} s: the "
            "machine is shared with other engineers.",
            "",
            "Reproduce (from the repository root):",
            "",
            "```sh",
            self.command,
            "```",
            "",
            f"**What runs.** {s.gpus} simulated GPUs ({s.hosts} machines x {s.gpus_per_host}) "
            f"in front of {s.gpus} fake ComfyUI instances ({s.fake_processes} processes), each "
            f"offering all {s.checkpoints} checkpoints and charging the load time when a job "
            "needs a checkpoint other than the one loaded (or none is). A private redis-server "
            f"and {s.hosts} `fleetq supervisor --simulate-gpus {s.gpus_per_host}` processes; "
            "the trace is submitted with `AsyncClient.submit(..., priority=, tenant=)` at each "
            "job's arrival. Each job is CheckpointLoaderSimple -> FakeWork (its `model` input) "
            "-> SaveImage, so fleetq derives the checkpoint as a requirement and the supervisor "
            "sees which model each GPU has warm. Every policy runs the same trace on freshly "
            f"started fakes and supervisors. Policies: {self._policy_text()}. The small "
            "tenant's baseline (`no flood`) runs the same trace without the flood.",
            "",
            (
                "**Time scale.** None: real time, so the loads and jobs take their simulated "
                "times on the fakes."
            )
            if s.time_scale == 1
            else f"**Time scale.** Everything runs {1 / s.time_scale:g} times faster than the "
            f"simulated times: a {s.load_s:g} s load takes {s.wall(s.load_s):g} s on the fakes, "
            f"a {s.median_s:g} s job {s.wall(s.median_s):g} s. Every figure below is converted "
            f"back to the simulated scale (wall seconds x {1 / s.time_scale:g}), so fleetq's "
            "own per-job overhead (a few ms to tens of ms of wall time on this machine) "
            f"appears {1 / s.time_scale:g} times larger than it would at full scale.",
            "",
            self._trace_text(),
            "",
            "### Results",
            "",
            "| policy | trace | jobs | model loads | loads per 1,000 jobs | GPU time loading "
            "| makespan s (flood) | top band wait p50 / p95 s | normal band p50 / p95 s | "
            f"`{FLOOD}` p50 / p95 s | `{SMALL}` p50 / p95 s | wall s | CPU used |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for result, m in self.runs:
            lines.append(
                f"| {result.policy} | {result.trace_name} | {m.jobs:,} | {m.loads:,} "
                f"| {m.loads_per_1000:.0f} | {m.load_gpu_s:,.0f} GPU-s "
                f"({100 * m.load_share:.0f}% of busy) "
                f"| {m.makespan_s:.0f} ({_secs(m.flood_makespan_s)}) "
                f"| {_w(m.by_band.get(TOP_PRIORITY))} | {_w(m.by_band.get(NORMAL_PRIORITY))} "
                f"| {_w(m.by_tenant.get(FLOOD))} | {_w(m.by_tenant.get(SMALL))} "
                f"| {result.run_s:.0f} | {100 * result.cpu_share:.0f}% |"
            )
        lines += [
            "",
            "Model loads: a job that ran on an instance whose previous job used another "
            "checkpoint (or that had run none) loaded its checkpoint first; the fakes' own load "
            "counters agree"
            + self._agreement()
            + ". GPU time loading: loads x the load time, and its share of all GPU busy time. "
            "Wait: from the submit to the start of the execution on the fake (before any load). "
            "Makespan: the first submit to the last end; (flood): to the last end of the jobs "
            "that arrived at t=0. The whole trace's makespan cannot fall below the `no flood` "
            "run's (its last arrivals plus their run), so the flood's is what scheduling can "
            "shorten. The flood is submitted while the "
            "service is paused and counts as arriving when it is resumed (t=0), so it is all "
            "queued at the start; the submitter fell behind the trace's later arrivals by at "
            "most (wall s) "
            + ", ".join(f"{r.policy}/{r.trace_name} {r.late_s:.2f}" for r, _ in self.runs)
            + ".",
            "",
        ]
        lines += self._detail()
        lines += self._targets()
        lines += self._reading()
        lines += self._eta()
        return "\n".join(lines) + "\n"

    def _reading(self) -> list[str]:
        shares = popularity(self.sizes)
        same = sum(p * p for p in shares)
        return [
            "### How to read it",
            "",
            f"- Under `{BASELINE}` a GPU takes whatever job is first, so two jobs in a row on one "
            f"GPU share a checkpoint with probability sum(p^2) = {100 * same:.0f}% here: about "
            f"{1000 * (1 - same):.0f} loads per 1,000 jobs are to be expected.",
            "- Warm-model affinity lets a GPU take the first job of its loaded model instead of "
            "the first job, within the same priority band (`affinity_priority_window` 0) and "
            "the same tenant, unless that job arrived `affinity_max_wait_s` (60 s by default) "
            "or more after the first one. The flood arrives at once, so affinity may reorder "
            "it freely; the passed-over job takes the warm job's place in its tenant's order.",
            "- Fair share gives a tenant's next job in a band a start tag at the band's virtual "
            "time, ahead of the flood's queued tags, and affinity never passes over another "
            "tenant's turn: the small tenant's job waits only for a GPU to come free, whatever "
            "model that GPU has loaded (so it pays a load more often than the flood does).",
            "- The flood takes every GPU at t=0, and each first job loads its checkpoint before "
            f"it runs, so no GPU comes free before {self.sizes.load_s + self.sizes.min_s:g} s "
            "(load plus the shortest run): a job arriving in those first seconds waits for one, "
            "whatever its priority or tenant. Only preempting running jobs or keeping GPUs idle "
            "for later arrivals would avoid that; fleetq does neither. That start-up is most of "
            "the small tenant's p95 with the flood; its jobs arriving after the first job ended "
            "are shown apart in the targets.",
            "",
        ]

    def _detail(self) -> list[str]:
        out = [
            "### Waits per tenant and band",
            "",
            "To the claim: the queue alone (submit to fleetq's claim, both on this machine's "
            "clock). To the start: the claim plus the dispatch to the fake (what the table "
            "above shows). A job first in line still waits for a GPU to come free when the "
            "flood keeps them all busy: the top band's wait is that floor.",
            "",
            "| policy | trace | tenant | priority | jobs | to the claim p50 / p95 s "
            "| to the start p50 / p95 s |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for result, m in self.runs:
            for (tenant, band), w in m.by_tenant_band.items():
                c = m.claim_by_tenant_band.get((tenant, band))
                out.append(f"| {result.policy} | {result.trace_name} | `{tenant}` | {band} "
                           f"| {w.jobs:,} | {_w(c)} | {_w(w)} |")  # fmt: skip
        return [*out, ""]

    def _agreement(self) -> str:
        off = [
            f"{r.policy}/{r.trace_name}: {m.loads} vs {r.loads_reported}"
            for r, m in self.runs
            if r.loads_reported != m.loads
        ]
        return "" if not off else f" except in {'; '.join(off)} (counted vs reported)"

    def _targets(self) -> list[str]:
        base = self.run(BASELINE)
        rows = []
        for result, m in self.runs:
            if result.policy == BASELINE or result.trace_name != "flood" or base is None:
                continue
            b = base[1]
            fewer = b.loads / m.loads if m.loads else math.inf
            cut = 1 - m.flood_makespan_s / b.flood_makespan_s
            top_b, top_m = b.claim_by_band.get(TOP_PRIORITY), m.claim_by_band.get(TOP_PRIORITY)
            rows.append(
                (result.policy, f">= {TARGET_LOADS_X:g}x fewer model loads than {BASELINE}",
                 fewer >= TARGET_LOADS_X, f"{fewer:.1f}x ({b.loads:,} -> {m.loads:,})")
            )  # fmt: skip
            rows.append(
                (result.policy, f">= {100 * TARGET_MAKESPAN_CUT:.0f}% shorter makespan (of "
                 "the flood)", cut >= TARGET_MAKESPAN_CUT,
                 f"{100 * cut:.0f}% ({b.flood_makespan_s:.0f} s -> {m.flood_makespan_s:.0f} s); "
                 f"of the whole trace {b.makespan_s:.0f} s -> {m.makespan_s:.0f} s")
            )  # fmt: skip
            if top_b and top_m:
                rows.append(
                    (result.policy, f"top band p95 queue wait no worse than {BASELINE}",
                     top_m.p95_s <= top_b.p95_s, f"{top_b.p95_s:.1f} s -> {top_m.p95_s:.1f} s")
                )  # fmt: skip
            # The small tenant alone barely competes, whatever the policy: one baseline run.
            alone = next((x for x in self.runs if x[0].trace_name == "no flood"), None)
            small = m.claim_by_tenant.get(SMALL)
            small_alone = alone[1].claim_by_tenant.get(SMALL) if alone else None
            if small and small_alone:
                later = m.claim_by_tenant_after_first_end.get(SMALL)
                rows.append(
                    (result.policy,
                     f"`{SMALL}` p95 queue wait within {TARGET_SMALL_X:g}x of its wait with no "
                     "flood",
                     small.p95_s <= TARGET_SMALL_X * small_alone.p95_s,
                     f"{small.p95_s:.1f} s with the flood, {small_alone.p95_s:.1f} s without"
                     + (f"; {later.p95_s:.2f} s for its jobs arriving after the first job "
                        f"ended (t={m.first_end_s:.1f} s)" if later else ""))
                )  # fmt: skip
        if not rows:
            return []
        out = [
            "### Targets",
            "",
            "Waits here are queue waits (submit to claim): what the scheduler decides. The "
            "dispatch to the backend that follows is the same code whatever the policy (see the "
            "table above for the wait to the start).",
            "",
            "| policy | target | result | measured |",
            "|---|---|---|---|",
        ]
        out += [f"| {p} | {t} | {'met' if ok else 'missed'} | {v} |" for p, t, ok, v in rows]
        return [*out, ""]

    def _eta(self) -> list[str]:
        rows = [(r, m.eta) for r, m in self.runs if m.eta is not None]
        if not rows:
            return []
        out = [
            "### ETA error",
            "",
            "`status()` of a queued job gives its estimated start and finish (fleetq/eta.py). "
            "Read right after the submit of every job that arrives alone (the small tenant's "
            f"and the top band's), and every {ETA_TICK_S:g} simulated s for a few random flood "
            "jobs still queued; compared with the job's actual claim (start) and finish. Estimates "
            "made before the first completion (no run time on record: a 10 s guess, here "
            f"{1 / self.sizes.time_scale:g} times too long in wall time) are counted apart and "
            "left out. Without one: queued jobs that had no estimate (no live GPU could run "
            "them). The relative error divides by the wait that was left (estimates with at "
            "least 1 s left).",
            "",
            "| policy | trace | estimates | guesses left out | without one | start: median error "
            "(bias) s | start "
            "\\|error\\| p50 / p90 s | start \\|error\\| / wait left, p50 / p90 | finish "
            "\\|error\\| p50 / p90 s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r, e in rows:
            assert e is not None
            out.append(
                f"| {r.policy} | {r.trace_name} | {e.samples} | {e.guessed} | {e.missing} "
                f"| {e.start_bias_s:+.1f} | {e.start_abs_p50_s:.1f} / {e.start_abs_p90_s:.1f} "
                f"| {_ratio(e.start_rel_p50)} / {_ratio(e.start_rel_p90)} "
                f"| {e.finish_abs_p50_s:.1f} / {e.finish_abs_p90_s:.1f} |"
            )
        return [*out, ""]
