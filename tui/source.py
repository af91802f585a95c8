"""Where snapshots come from: the core's read API over Redis, or a fixed fleet (tests, docs).

A source answers one :class:`ReadRequest` per refresh with a :class:`FleetRead`. The Redis source
reads a bounded page of jobs and the fleet records (O(hosts)), never a whole queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from fleetq import AsyncClient, JobNotFound, JobStatus, Stats
from fleetq.fleet import FleetView
from fleetq.identity import marked_targets
from tui.schedulability import Schedulability

#: Jobs read per refresh (per state): the table shows this page, whatever the queue size.
PAGE_SIZE = 200
#: The job states the jobs table can filter on; "active" is queued and running together.
STATE_FILTERS = ("active", "queued", "running", "failed", "completed", "cancelled")


@dataclass(frozen=True)
class JobFilter:
    state: str = "active"
    service: str | None = None


@dataclass(frozen=True)
class ReadRequest:
    job_filter: JobFilter = JobFilter()
    #: The job whose detail view is open, if any.
    detail_id: str | None = None
    page_size: int = PAGE_SIZE


#: Events of a job's own stream that an operator (or a client) caused, for its timeline.
ACTION_EVENTS = frozenset({"cancelled", "cancel_requested", "retried", "bumped"})


@dataclass(frozen=True)
class JobAction:
    """Something done to a job from outside its GPU: a cancel, a cancel request, a retry."""

    at_ms: int
    kind: str
    #: Who asked, where the core records it ("tui:user@host", "cli:user@host", "client"...).
    by: str | None = None
    #: For a bump: the priority before and after.
    change: tuple[str, str] | None = None


@dataclass(frozen=True)
class FleetRead:
    """The raw answers of one refresh, in the core's own types."""

    stats: Stats
    jobs: tuple[JobStatus, ...]
    fleet: FleetView
    detail_id: str | None = None
    detail: JobStatus | None = None
    #: The detail job's workflow JSON (read once per job, then cached by the source).
    workflow: str | None = None
    #: The detail job's cancels and retries, oldest first.
    actions: tuple[JobAction, ...] = ()
    #: Who paused each paused service and drained each drained target (``paused:<svc>``,
    #: ``drained:<target>`` -> operator), where recorded.
    changed_by: Mapping[str, str] = field(default_factory=dict)


class SnapshotSource(Protocol):
    async def read(self, request: ReadRequest) -> FleetRead: ...

    async def aclose(self) -> None: ...


class RedisSource:
    """Reads through :class:`fleetq.AsyncClient`: stats, one page of jobs, the fleet records."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._workflow: tuple[str, str | None] | None = None
        self._schedulability = Schedulability(client.store)

    async def read(self, request: ReadRequest) -> FleetRead:
        stats, jobs, fleet = await asyncio.gather(
            self.client.stats(), self._jobs(request), self.client.fleet()
        )
        # A second round trip only while something is paused or drained, or while queued jobs
        # of a requirement class not seen before (or GPUs of new capabilities) are on the page.
        marks = marked_targets(stats)
        changed_by = await self.client.changed_by(marks) if marks else {}
        jobs = await self._schedulability.mark(jobs, fleet)
        read = FleetRead(stats=stats, jobs=jobs, fleet=fleet, changed_by=changed_by)
        if request.detail_id is None:
            return read
        (detail, workflow), actions = await asyncio.gather(
            self._detail(request.detail_id, fleet), self._actions(request.detail_id)
        )
        return replace(
            read, detail_id=request.detail_id, detail=detail, workflow=workflow, actions=actions
        )

    async def _actions(self, job_id: str) -> tuple[JobAction, ...]:
        # The job's own stream (at most 200 entries, mostly progress), read only while its
        # detail is open.
        store = self.client.store
        entries = await store.command("xrange", store.keys.job_events(job_id), "-", "+")
        return actions_from_stream(entries or ())

    async def _jobs(self, request: ReadRequest) -> tuple[JobStatus, ...]:
        f, limit = request.job_filter, request.page_size
        if f.state == "active":
            running, queued = await asyncio.gather(
                self.client.jobs("running", f.service, limit),
                self.client.jobs("queued", f.service, limit),
            )
            return (*running, *queued)
        return tuple(await self.client.jobs(f.state, f.service, limit))

    async def _detail(self, job_id: str, fleet: FleetView) -> tuple[JobStatus | None, str | None]:
        try:
            # The fleet of this read, and the capability documents the marks already hold.
            documents = self._schedulability.documents
            status = await self.client.status(job_id, fleet=fleet, documents=documents)
        except JobNotFound:
            return None, None
        if self._workflow is None or self._workflow[0] != job_id:
            store = self.client.store
            raw = await store.command("hget", store.keys.job(job_id), "workflow")
            self._workflow = (job_id, _text(raw))
        return status, self._workflow[1]

    async def aclose(self) -> None:
        await self.client.aclose()


class StaticSource:
    """A fixed fleet (tests, snapshots, the docs screenshot); applies the job filter in Python."""

    def __init__(
        self,
        stats: Stats,
        jobs: Sequence[JobStatus],
        fleet: FleetView,
        workflows: dict[str, str] | None = None,
    ) -> None:
        self.stats = stats
        self.jobs = tuple(jobs)
        self.fleet = fleet
        self.workflows = workflows or {}
        self.reads = 0
        self.closed = False

    async def read(self, request: ReadRequest) -> FleetRead:
        self.reads += 1
        f = request.job_filter
        states = ("queued", "running") if f.state == "active" else (f.state,)
        jobs = tuple(
            j for j in self.jobs if j.state.value in states and f.service in (None, j.service)
        )[: request.page_size * len(states)]
        read = FleetRead(stats=self.stats, jobs=jobs, fleet=self.fleet)
        if request.detail_id is None:
            return read
        detail = next((j for j in self.jobs if j.id == request.detail_id), None)
        workflow = self.workflows.get(request.detail_id)
        return replace(read, detail_id=request.detail_id, detail=detail, workflow=workflow)

    async def aclose(self) -> None:
        self.closed = True


def actions_from_stream(entries: Sequence[tuple[object, object]]) -> tuple[JobAction, ...]:
    """The cancels and retries among raw ``XRANGE`` entries of a job's stream."""
    actions = []
    for entry_id, fields in entries:
        values = fields if isinstance(fields, dict) else {}
        decoded = {_text(k): _text(v) for k, v in values.items()}
        kind = decoded.get("type")
        if kind in ACTION_EVENTS:
            at_ms = int((_text(entry_id) or "0-0").partition("-")[0])
            before, after = decoded.get("from"), decoded.get("to")
            change = (before, after) if before is not None and after is not None else None
            actions.append(JobAction(at_ms, str(kind), decoded.get("by") or None, change))
    return tuple(actions)


def _text(raw: object) -> str | None:
    if raw is None:
        return None
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
