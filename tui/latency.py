"""Queue latency as the dashboard sees it: how long jobs waited before a GPU took them, and how
long the backlog takes to clear at the current rate.

:class:`LatencyTracker` records the wait (start - submit) of each job the first time it is seen
running, per service, over the last 15 minutes (at most 1,000 samples per service); percentiles
come from those samples. It learns from the running jobs the poller reads (the ``active`` and
``running`` job filters), so it knows nothing of what happened before the dashboard started.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from fleetq.model import JobState, JobStatus, ServiceStats

WINDOW_MS = 15 * 60_000
SAMPLES_PER_SERVICE = 1000
#: Job ids already counted (bounded: the oldest are forgotten first).
REMEMBERED_IDS = 20_000


@dataclass(frozen=True)
class Latency:
    """Wait percentiles (ms) of the jobs that started in the window, and how many."""

    p50_ms: int
    p90_ms: int
    p99_ms: int
    samples: int


def percentile(sorted_values: list[int], fraction: float) -> int:
    """Nearest-rank percentile of an ascending list (not empty)."""
    rank = max(1, -(-int(fraction * 1000) * len(sorted_values) // 1000))
    return sorted_values[min(len(sorted_values), rank) - 1]


class LatencyTracker:
    def __init__(self) -> None:
        self._waits: dict[str, deque[tuple[int, int]]] = {}
        self._counted: OrderedDict[tuple[str, int], None] = OrderedDict()

    def observe(self, jobs: Iterable[JobStatus]) -> None:
        """Count each running job's wait once (per start: a retried job counts again)."""
        for job in jobs:
            if job.state is not JobState.RUNNING or job.started_ms is None:
                continue
            key = (job.id, job.started_ms)
            if key in self._counted:
                continue
            self._counted[key] = None
            if len(self._counted) > REMEMBERED_IDS:
                self._counted.popitem(last=False)
            waits = self._waits.setdefault(job.service, deque(maxlen=SAMPLES_PER_SERVICE))
            waits.append((job.started_ms, max(0, job.started_ms - job.submitted_ms)))

    def latency(self, service: str, now_ms: int) -> Latency | None:
        waits = self._waits.get(service)
        if not waits:
            return None
        while waits and waits[0][0] < now_ms - WINDOW_MS:
            waits.popleft()
        values = sorted(w for _, w in waits)
        if not values:
            return None
        return Latency(
            percentile(values, 0.5), percentile(values, 0.9), percentile(values, 0.99), len(values)
        )


def clear_time_ms(stats: ServiceStats) -> int | None:
    """How long the ready backlog takes at the last minute's rate (done + failed per minute);
    None when nothing is waiting; -1 when nothing finished in the last minute (it is stalled)."""
    ready = stats.queued - stats.delayed
    if ready <= 0:
        return None
    rate = stats.completed_last_minute + stats.failed_last_minute
    if rate <= 0:
        return -1
    return ready * 60_000 // rate
