"""The headless demo's report: jobs by state, per-GPU busy share, waits, and the verdict."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fleetq.fleet import FleetView
from fleetq.model import JobStatus


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class DemoSummary:
    window_ms: tuple[int, int]
    submitted: int
    states: Counter[str]
    kinds: dict[str, Counter[str]]
    busy_share: dict[str, float]
    waits_ms: dict[str, list[int]]
    lost: list[str]
    faulted: set[str] = field(default_factory=set)

    @property
    def problems(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} job(s) lost")
        if self.states.get("completed", 0) == 0:
            found.append("no job completed")
        idle = [g for g, share in self.busy_share.items() if share == 0 and g not in self.faulted]
        if idle:
            found.append("GPUs that never ran a job: " + ", ".join(sorted(idle)))
        failing = self.kinds.get("failing", Counter())
        if failing.get("completed", 0):
            found.append("a failing workflow completed")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        start, end = self.window_ms
        lines = [
            f"fleetq demo summary ({(end - start) / 1000:.0f} s, {self.submitted} jobs submitted)",
            "",
        ]
        lines.append("jobs by state:   " + ", ".join(
            f"{state} {self.states.get(state, 0)}"
            for state in ("completed", "failed", "cancelled", "running", "queued")
        ))  # fmt: skip
        for kind, counts in sorted(self.kinds.items()):
            lines.append(f"  {kind:<8} " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
        lines += ["", "GPU busy share:"]
        for gpu, share in sorted(self.busy_share.items()):
            note = "  (fault injected)" if gpu in self.faulted else ""
            lines.append(f"  {gpu:<20} {share:6.1%}  {'#' * round(share * 30)}{note}")
        lines += ["", "wait from submit to start (ms):"]
        for kind, waits in sorted(self.waits_ms.items()):
            p50, p95 = percentile(waits, 0.5), percentile(waits, 0.95)
            lines.append(f"  {kind:<8} p50 {p50:>8.0f}   p95 {p95:>8.0f}   (n={len(waits)})"
                         if waits else f"  {kind:<8} -")  # fmt: skip
        lines.append("")
        lines.append("verdict: the fleet did its work" if self.ok
                     else "verdict: PROBLEMS: " + "; ".join(self.problems))  # fmt: skip
        return "\n".join(lines)


def summarize(
    jobs: Iterable[tuple[str, JobStatus | None]],
    fleet: FleetView,
    window_ms: tuple[int, int],
    faulted: set[str],
) -> DemoSummary:
    """Build the summary from each submitted job's status (None when the job is missing)."""
    start, end = window_ms
    busy: dict[str, float] = defaultdict(float)
    for host in fleet.hosts:
        for gpu in host.gpus:
            busy[f"{host.host}:{gpu.index}"] += 0.0
    states: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    waits: dict[str, list[int]] = defaultdict(list)
    lost, submitted = [], 0
    for kind, status in jobs:
        submitted += 1
        if status is None:
            lost.append(kind)
            continue
        states[status.state.value] += 1
        kinds[kind][status.state.value] += 1
        if status.timeline:
            waits[kind].append(status.timeline[0].started_ms - status.submitted_ms)
        for attempt in status.timeline:
            ended = attempt.ended_ms if attempt.ended_ms is not None else end
            overlap = min(ended, end) - max(attempt.started_ms, start)
            if overlap > 0:
                busy[f"{attempt.host}:{attempt.gpu}"] += overlap
    span = max(1, end - start)
    shares = {gpu: total / span for gpu, total in busy.items()}
    return DemoSummary(window_ms, submitted, states, dict(kinds), shares, dict(waits), lost,
                       faulted)  # fmt: skip
