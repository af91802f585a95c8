"""The headless demo's report: jobs by state, per-GPU busy share, waits, the jobs that waited
for a model no machine had, and the verdict."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fleetq.demo.arrival import ModelArrival
from fleetq.fleet import FleetView
from fleetq.model import JobState, JobStatus


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True)
class NewModelStory:
    """What became of the jobs that needed a model no machine had when they were submitted."""

    model: str
    host: str
    jobs: int
    #: How many ``status()`` reported unschedulable before the model arrived, and its words.
    marked: int
    reason: str | None
    #: Seconds into the run when the model arrived (None: the run ended first).
    arrived_s: float | None
    error: str | None
    #: Jobs that started before the model arrived (none can: no machine could run them).
    early: int
    completed: int

    @property
    def problems(self) -> list[str]:
        found = []
        if self.error:
            found.append(f"adding {self.model} to {self.host} failed: {self.error}")
        if self.arrived_s is None:
            return found
        if self.marked < self.jobs:
            found.append(f"{self.jobs - self.marked} job(s) needing {self.model} were not "
                         "reported unschedulable before it arrived")  # fmt: skip
        if self.early:
            found.append(f"{self.early} job(s) needing {self.model} started before any "
                         "machine had it")  # fmt: skip
        if not self.error and self.completed == 0:
            found.append(f"no job needing {self.model} completed after it arrived")
        return found

    def render(self) -> list[str]:
        lines = [f"waiting for a model: {self.jobs} jobs needed {self.model}, "
                 "which no machine had"]  # fmt: skip
        if self.arrived_s is None:
            lines.append(f"  adding it failed: {self.error}" if self.error
                         else "  the run ended before it arrived")  # fmt: skip
            return lines
        said = f' ("{self.reason}")' if self.reason else ""
        lines.append(f"  before: {self.marked} of {self.jobs} reported unschedulable{said}")
        lines.append(f"  at {self.arrived_s:.0f} s: " + (
            f"adding it to {self.host} failed: {self.error}" if self.error
            else f"added to {self.host}, which read its capabilities again"))  # fmt: skip
        early = "none" if self.early == 0 else str(self.early)
        lines.append(f"  after: completed {self.completed} of {self.jobs}, "
                     f"{early} started before it arrived")  # fmt: skip
        return lines


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
    new_model: NewModelStory | None = None

    @property
    def problems(self) -> list[str]:
        found = [] if self.new_model is None else self.new_model.problems
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
            lines.append(f"  {kind:<9} " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
        lines += ["", "GPU busy share:"]
        for gpu, share in sorted(self.busy_share.items()):
            note = "  (fault injected)" if gpu in self.faulted else ""
            lines.append(f"  {gpu:<20} {share:6.1%}  {'#' * round(share * 30)}{note}")
        lines += ["", "wait from submit to start (ms):"]
        for kind, waits in sorted(self.waits_ms.items()):
            p50, p95 = percentile(waits, 0.5), percentile(waits, 0.95)
            lines.append(f"  {kind:<9} p50 {p50:>8.0f}   p95 {p95:>8.0f}   (n={len(waits)})"
                         if waits else f"  {kind:<9} -")  # fmt: skip
        lines.append("")
        if self.new_model is not None:
            lines += [*self.new_model.render(), ""]
        lines.append("verdict: the fleet did its work" if self.ok
                     else "verdict: PROBLEMS: " + "; ".join(self.problems))  # fmt: skip
        return "\n".join(lines)


def summarize(
    jobs: Iterable[tuple[str, JobStatus | None]],
    fleet: FleetView,
    window_ms: tuple[int, int],
    faulted: set[str],
    arrival: ModelArrival | None = None,
) -> DemoSummary:
    """Build the summary from each submitted job's status (None when the job is missing), and
    the story of the jobs waiting for ``arrival``'s model when there is one."""
    jobs = list(jobs)  # read twice: for the totals, then for the new model's story
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
    story = None if arrival is None else new_model_story(arrival, jobs, start)
    return DemoSummary(window_ms, submitted, states, dict(kinds), shares, dict(waits), lost,
                       faulted, story)  # fmt: skip


def new_model_story(
    arrival: ModelArrival, jobs: Iterable[tuple[str, JobStatus | None]], start_ms: int
) -> NewModelStory:
    """What ``status()`` said of the jobs waiting for ``arrival``'s model before it arrived, and
    what became of them (``jobs``: every submitted job's status, theirs among them)."""
    waiting = set(arrival.job_ids)
    statuses = [s for _, s in jobs if s is not None and s.id in waiting]
    reasons = [r for r in arrival.reasons_before.values() if r]
    at_ms = arrival.at_ms
    early = (
        0 if at_ms is None
        else sum(1 for s in statuses if s.timeline and s.timeline[0].started_ms < at_ms)
    )  # fmt: skip
    return NewModelStory(
        model=arrival.model,
        host=arrival.host,
        jobs=len(arrival.job_ids),
        marked=len(reasons),
        reason=reasons[0] if reasons else None,
        arrived_s=None if at_ms is None else max(0, at_ms - start_ms) / 1000,
        error=arrival.error,
        early=early,
        completed=sum(1 for s in statuses if s.state is JobState.COMPLETED),
    )
