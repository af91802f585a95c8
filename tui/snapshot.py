"""Immutable snapshots of the fleet, as the poller hands them to the widgets.

:class:`SnapshotBuilder` turns one :class:`~tui.source.FleetRead` (what the core's read API
returned) into a :class:`Snapshot`. It is the only stateful part: it keeps the last minute of
utilization samples per GPU (the sparklines) and the GPUs last seen on each host, so a machine
whose record expired still lists its GPUs, marked offline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fleetq.fleet import HostView
from fleetq.model import JobState, JobStatus, ServiceStats
from fleetq.records import GpuJobRecord, GpuRecord
from tui.latency import Latency, LatencyTracker
from tui.source import FleetRead, JobAction, JobFilter
from tui.workflow import WorkflowSummary, summarize_workflow

#: Utilization samples kept per GPU: one a second for a minute.
HISTORY_LEN = 60
#: Two samples closer than this (an extra refresh after an action) count as one.
MIN_SAMPLE_GAP_MS = 900


#: The job a GPU runs, as its supervisor published it (id, service, progress, progress text).
GpuJob = GpuJobRecord


@dataclass(frozen=True, slots=True)
class GpuSnapshot:
    """One GPU: its record as its supervisor last published it, with what the dashboard adds
    (the drain state in Redis, the utilization history, since when it is faulty).

    The readings are read from the record when asked for (the rows on screen), not copied for
    every GPU at every refresh. Every reading is ``None`` when the GPU does not report it
    (shown as N/A), and all of them are for a GPU whose machine is offline.
    """

    host: str
    index: int
    name: str
    online: bool
    blocked: str | None
    #: This GPU is drained (its own target); ``host_drained``: its whole machine is.
    drained: bool
    host_drained: bool
    history: tuple[float, ...]
    #: Samples taken since the dashboard first saw this GPU (``history`` keeps the newest).
    history_count: int = 0
    #: Since when the GPU has been not healthy (as this dashboard saw it); None when healthy.
    fault_since_ms: int | None = None
    #: The fault was already there when the dashboard first saw the GPU (so: "or earlier").
    fault_before_start: bool = False
    #: The GPU's record as last published; None while its machine is offline.
    record: GpuRecord | None = None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.index}"

    @property
    def health(self) -> str | None:
        health = None if self.record is None else self.record.health
        return None if health is None else health.value

    @property
    def reasons(self) -> tuple[str, ...]:
        return () if self.record is None else self.record.reasons

    @property
    def job(self) -> GpuJob | None:
        return None if self.record is None else self.record.job

    @property
    def readings(self) -> Mapping[str, Any]:
        """Every reading the supervisor published (the GPU detail view shows them all)."""
        return _NO_READINGS if self.record is None else self.record.readings

    def _reading(self, name: str) -> float | None:
        return None if self.record is None else self.record.reading(name)

    @property
    def util_pct(self) -> float | None:
        return self._reading("utilization_gpu_pct")

    @property
    def mem_used_mb(self) -> float | None:
        return self._reading("memory_used_mb")

    @property
    def mem_total_mb(self) -> float | None:
        return self._reading("memory_total_mb")

    @property
    def temp_c(self) -> float | None:
        return self._reading("temperature_c")

    @property
    def temp_slowdown_c(self) -> float | None:
        return self._reading("temperature_slowdown_c")

    @property
    def power_w(self) -> float | None:
        return self._reading("power_w")

    @property
    def power_limit_w(self) -> float | None:
        return self._reading("power_limit_w")

    @property
    def warm_model(self) -> str | None:
        """The model its backend has loaded (None: none, or not published)."""
        return None if self.record is None else self.record.warm_model or None

    @property
    def model_loads(self) -> int | None:
        """The model loads its supervisor counted (None: its machine is offline)."""
        return None if self.record is None else self.record.model_loads


_NO_READINGS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    host: str
    online: bool
    last_seen_ms: int
    drained: bool
    gpus: tuple[GpuSnapshot, ...]
    version: str | None = None


@dataclass(frozen=True)
class JobDetail:
    job_id: str
    #: None when the job no longer exists (expired after its retention).
    status: JobStatus | None
    workflow: WorkflowSummary | None
    #: Cancels and retries from outside its GPU, oldest first (for the timeline).
    actions: tuple[JobAction, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard shows, read in one refresh."""

    seq: int
    now_ms: int
    services: tuple[ServiceStats, ...]
    drained: frozenset[str]
    job_filter: JobFilter
    jobs: tuple[JobStatus, ...]
    #: How many jobs match the filter in Redis (the table shows a bounded page of them).
    jobs_total: int
    hosts: tuple[HostSnapshot, ...]
    detail: JobDetail | None = None
    #: Wait percentiles per service, from the starts this dashboard saw (see tui.latency).
    latency: Mapping[str, Latency] = field(default_factory=dict)
    #: Who paused or drained (``paused:<svc>``, ``drained:<target>`` -> operator).
    changed_by: Mapping[str, str] = field(default_factory=dict)

    @property
    def gpu_count(self) -> int:
        return sum(len(h.gpus) for h in self.hosts)


@dataclass
class SnapshotBuilder:
    """Builds snapshots; keeps per-GPU utilization history between refreshes."""

    history_len: int = HISTORY_LEN
    _history: dict[str, deque[float]] = field(default_factory=dict)
    _last_sample_ms: dict[str, int] = field(default_factory=dict)
    _sample_count: dict[str, int] = field(default_factory=dict)
    #: target -> (since_ms, seen at the first look): when each GPU's current fault began.
    _fault_since: dict[str, tuple[int, bool]] = field(default_factory=dict)
    _known_gpus: dict[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)
    _workflows: dict[str, WorkflowSummary] = field(default_factory=dict)
    _seq: int = 0
    _latency: LatencyTracker = field(default_factory=LatencyTracker)

    def seed_history(self, target: str, samples: list[float]) -> None:
        """Start a GPU's sparkline with earlier samples (the demo and docs use this)."""
        self._history[target] = deque(samples, maxlen=self.history_len)
        self._sample_count[target] = len(samples)

    def build(self, read: FleetRead, job_filter: JobFilter, now_ms: int | None = None) -> Snapshot:
        now = read.stats.now_ms if now_ms is None else now_ms
        self._seq += 1
        drained = frozenset(read.stats.drained)
        hosts = tuple(self._host(h, drained, now) for h in read.fleet.hosts)
        live = {h.host for h in read.fleet.hosts}
        for key in [k for k in self._history if k.partition(":")[0] not in live]:
            del self._history[key]
            self._last_sample_ms.pop(key, None)
            self._sample_count.pop(key, None)
        self._latency.observe(read.jobs)
        latency = {
            s.service: lat
            for s in read.stats.services
            if (lat := self._latency.latency(s.service, now)) is not None
        }
        return Snapshot(
            latency=latency,
            seq=self._seq,
            now_ms=now,
            services=read.stats.services,
            drained=drained,
            job_filter=job_filter,
            jobs=sort_jobs(read.jobs, job_filter),
            jobs_total=jobs_total(read.stats.services, job_filter),
            hosts=hosts,
            detail=self._detail(read),
            changed_by=read.changed_by,
        )

    def _detail(self, read: FleetRead) -> JobDetail | None:
        if read.detail_id is None:
            return None
        summary = self._workflows.get(read.detail_id)
        if summary is None and read.workflow is not None:
            summary = summarize_workflow(read.workflow)
            self._workflows = {read.detail_id: summary}  # one detail view at a time
        return JobDetail(read.detail_id, read.detail, summary, read.actions)

    def _host(self, view: HostView, drained: frozenset[str], now_ms: int) -> HostSnapshot:
        host_drained = view.host in drained
        if not view.online:
            known = self._known_gpus.get(view.host, ())
            gpus = tuple(
                self._offline_gpu(view.host, index, name, drained, host_drained)
                for index, name in known
            )
            return HostSnapshot(view.host, False, view.last_seen_ms, host_drained, gpus)
        gpus = tuple(self._gpu(view.host, g, drained, host_drained, now_ms) for g in view.gpus)
        gpus = tuple(sorted(gpus, key=lambda g: g.index))
        self._known_gpus[view.host] = tuple((g.index, g.name) for g in gpus)
        return HostSnapshot(
            view.host,
            True,
            view.last_seen_ms,
            host_drained,
            gpus,
            version=view.record.version,
        )

    def _gpu(
        self,
        host: str,
        record: GpuRecord,
        drained: frozenset[str],
        host_drained: bool,
        now_ms: int,
    ) -> GpuSnapshot:
        index = record.index
        target = f"{host}:{index}"
        history = self._sample(target, record.reading("utilization_gpu_pct"), now_ms)
        blocked = record.blocked
        health = None if record.health is None else record.health.value
        since = self._fault(target, health, now_ms)
        gpu_drained = target in drained
        if record.drained and not (gpu_drained or host_drained):
            # The drain set in Redis is the truth; the supervisor's record catches up with an
            # undrain only at its next publish (1-2 s), so its "drained" is not shown.
            blocked = None
        return GpuSnapshot(
            host,
            index,
            record.name or "GPU",
            True,
            blocked,
            gpu_drained,
            host_drained,
            history,
            self._sample_count.get(target, 0),
            None if since is None else since[0],
            since is not None and since[1],
            record,
        )

    def _fault(self, target: str, health: str | None, now_ms: int) -> tuple[int, bool] | None:
        """When the GPU's current fault began (None: it is healthy, or reports no health)."""
        if health in (None, "healthy"):
            self._fault_since.pop(target, None)
            return None
        since = self._fault_since.get(target)
        if since is None:
            # On the first refresh the fault may be older than the dashboard.
            since = self._fault_since[target] = (now_ms, self._seq <= 1)
        return since

    def _offline_gpu(
        self, host: str, index: int, name: str, drained: frozenset[str], host_drained: bool
    ) -> GpuSnapshot:
        target = f"{host}:{index}"
        kept = self._history.get(target)
        return GpuSnapshot(
            host=host, index=index, name=name, online=False, blocked=None,
            drained=target in drained, host_drained=host_drained,
            history=tuple(kept) if kept else (), history_count=self._sample_count.get(target, 0),
        )  # fmt: skip

    def _sample(self, target: str, util: float | None, now_ms: int) -> tuple[float, ...]:
        samples = self._history.get(target)
        if samples is None:
            samples = self._history[target] = deque(maxlen=self.history_len)
        last = self._last_sample_ms.get(target)
        if last is None or now_ms - last >= MIN_SAMPLE_GAP_MS:
            # A missing reading is drawn as an empty column, never as zero load.
            samples.append(-1.0 if util is None else util)
            self._last_sample_ms[target] = now_ms
            self._sample_count[target] = self._sample_count.get(target, 0) + 1
        return tuple(samples)


def sort_jobs(jobs: Sequence[JobStatus], job_filter: JobFilter) -> tuple[JobStatus, ...]:
    """Queued and running jobs: priority first, then oldest first. Ended jobs: newest first."""
    if job_filter.state in ("active", "queued", "running"):
        # Equal priority and submit time: the queue position keeps FIFO order within a service.
        return tuple(sorted(jobs, key=lambda j: (-j.priority, j.submitted_ms, _pos(j), j.id)))
    return tuple(sorted(jobs, key=lambda j: (-(j.finished_ms or 0), j.id)))


def jobs_total(services: Sequence[ServiceStats], job_filter: JobFilter) -> int:
    rows = [s for s in services if job_filter.service in (None, s.service)]
    if job_filter.state == "active":
        return sum(s.queued + s.running for s in rows)
    return sum(int(getattr(s, JobState(job_filter.state).value)) for s in rows)


def _pos(job: JobStatus) -> int:
    return -1 if job.position is None else job.position
