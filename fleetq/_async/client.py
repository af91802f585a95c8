"""The client: submit jobs, follow them, and steer the queue (the public modules are
:mod:`fleetq.client` and :mod:`fleetq.aclient`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

from fleetq._async.store import AsyncStore
from fleetq._async_support import AsyncProgressCallback, AsyncRedis, blocking, notify, sleep
from fleetq.config import Settings
from fleetq.errors import InvalidTransition, JobCancelled, JobFailed, RedisUnavailable
from fleetq.eta import estimate_from
from fleetq.fleet import FleetView
from fleetq.inputs import Inputs
from fleetq.model import JobResult, JobState, JobStatus, Stats
from fleetq.outage import OutageTolerance
from fleetq.outputs.readers import AsyncOutputReader
from fleetq.previews import Preview, PreviewFollower, preview_from_hash
from fleetq.protocol import Bumped
from fleetq.requirements import Capabilities
from fleetq.schedulable import explain as explain_unschedulable
from fleetq.schedulable import needs_explaining, refuse_unschedulable
from fleetq.tenants import parse_weights, weight_command
from fleetq.validation import build_spec, check_host_target, check_job_id, check_priority

T = TypeVar("T")


class AsyncJob:
    """A handle on one submitted job."""

    def __init__(self, client: AsyncClient, job_id: str) -> None:
        self.client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"

    async def status(self) -> JobStatus:
        """State, queue position, progress, attempts, host and GPU, error and timestamps."""
        return await self.client.status(self.id)

    async def cancel(self) -> str:
        """Cancel the job; see :meth:`Client.cancel`."""
        return await self.client.cancel(self.id)

    async def result(self) -> JobResult:
        """The outputs of a completed job; raises ``JobFailed`` / ``JobCancelled`` otherwise."""
        return await self.client.result(self.id)

    async def preview(self) -> Preview | None:
        """The latest live preview; see :meth:`Client.preview`."""
        return await self.client.preview(self.id)

    async def wait(
        self,
        timeout_s: float | None = None,
        on_progress: AsyncProgressCallback | None = None,
        *,
        previews: bool = True,
    ) -> JobResult:
        """Wait until the job ends and return its result.

        Raises :class:`~fleetq.errors.JobFailed` or :class:`~fleetq.errors.JobCancelled` when
        it ends that way, and ``TimeoutError`` when ``timeout_s`` passes first (the job keeps
        running). ``on_progress`` is called with a fresh status whenever the job is claimed,
        makes progress, shows a new live preview (``status.preview``, a
        :class:`~fleetq.previews.Preview`; read only when ``previews`` is true and a new one
        was announced) or is requeued (with asyncio it may be a coroutine function). It blocks
        on the job's own event stream in Redis, so it returns within milliseconds of the end
        without polling.
        """
        store = self.client.store
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        outage = _AsyncOutage(deadline, f"waiting for job {self.id} ({timeout_s} s)")
        last_id = await outage.retry(lambda: store.last_job_event_id(self.id))
        seen: tuple[Any, ...] | None = None
        follower = PreviewFollower(include=previews and on_progress is not None)
        while True:
            # The estimate (a read of the whole fleet) only where a callback will see it.
            read_status = partial(
                self.client.status, self.id, explain=False, eta=on_progress is not None
            )
            status = await outage.retry(read_status)
            if status.is_terminal:
                return await self.client.result_of(status)
            if follower.wants_read(status):
                follower.fetched(await outage.retry(self.preview))
            marker = (
                status.state, status.progress, status.progress_text, status.claims,
                follower.marker(),
            )  # fmt: skip
            if on_progress is not None and marker != seen:
                await notify(on_progress, follower.attach(status))
            seen = marker
            block_s = self.client.settings.block_timeout_s
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"job {self.id} still {status.state} after {timeout_s} s")
                block_s = min(block_s, remaining)
            block_ms = max(1, int(block_s * 1000))
            entries = await outage.retry(partial(store.read_job_events, self.id, last_id, block_ms))
            follower.feed(entries)
            if entries:
                last_id = entries[-1][0]


class _AsyncOutage:
    """Rides out a short Redis outage while waiting (policy: :class:`OutageTolerance`)."""

    def __init__(self, deadline: float | None = None, what: str = "the wait") -> None:
        self.tolerance = OutageTolerance()
        self.deadline = deadline
        self.what = what

    async def retry(self, read: Callable[[], Awaitable[T]]) -> T:
        while True:
            try:
                value = await read()
            except RedisUnavailable as e:
                await sleep(self.tolerance.backoff(e, self.deadline, self.what))
                continue
            self.tolerance.recovered()
            return value


class AsyncClient:
    """Submit and manage jobs of one fleet (one Redis, one namespace)."""

    def __init__(self, settings: Settings | None = None, *, redis: AsyncRedis | None = None):
        self.settings = settings or Settings.from_env()
        self.store = AsyncStore(self.settings, redis)
        #: Reads outputs from whichever store holds them (``FLEETQ_OUTPUT_STORE``).
        self.outputs = AsyncOutputReader(self.settings)

    @classmethod
    def from_url(cls, url: str, **settings: Any) -> AsyncClient:
        """A client for the Redis at ``url``; other settings as keyword arguments."""
        return cls(Settings.from_env(redis_url=url, **settings))

    @classmethod
    def from_env(cls, **settings: Any) -> AsyncClient:
        """A client configured from ``FLEETQ_*`` environment variables."""
        return cls(Settings.from_env(**settings))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the Redis connections."""
        await self.store.aclose()

    async def submit(
        self,
        workflow: Any,
        service: str = "comfyui",
        priority: int = 0,
        *,
        max_attempts: int | None = None,
        timeout_s: float | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        requires: Mapping[str, Any] | None = None,
        require_schedulable: bool = False,
        inputs: Inputs | None = None,
        tenant: str | None = None,
    ) -> AsyncJob:
        """Validate and enqueue a workflow; returns its job handle.

        ``workflow`` is the backend's native request: a ComfyUI API-format graph or an A1111
        ``txt2img``/``img2img`` body (a dict, or its JSON text). Higher ``priority`` runs first
        (-1000..1000). With an ``idempotency_key``, a
        resubmission returns the job already submitted under that key. ``inputs`` attaches
        files the workflow reads, by name: ``{"photo.png": b"..." or Path("photo.png")}``;
        a ComfyUI ``LoadImage`` / ``LoadImageMask`` (its ``image`` input) or an A1111
        ``init_images`` / ``mask`` / ControlNet ``image`` field names them, and the
        supervisor delivers them to the backend that runs the job (:mod:`fleetq.inputs`).
        ``tenant`` names who the job is for (default: the ``"tenant"`` key of ``metadata``,
        else ``"default"``): within one priority, tenants share the fleet by weighted fair
        queueing.
        Raises a :class:`~fleetq.errors.ValidationError` subclass, writing nothing, on bad
        input.

        ``requires`` adds explicit requirements to those derived from the workflow
        (``{"labels": {"gpu": "h100"}, "min_vram_gb": 24}``): only a GPU that meets them all
        claims the job. With ``require_schedulable``, a job no live GPU could run now raises
        :class:`~fleetq.errors.Unschedulable` instead, writing nothing (without it, such a job
        waits, and ``status()`` says why).
        """
        build = partial(
            build_spec,
            workflow,
            self.settings,
            service=service,
            priority=priority,
            max_attempts=max_attempts,
            timeout_s=timeout_s,
            metadata=metadata,
            idempotency_key=idempotency_key,
            requires=requires,
            inputs=inputs,
            tenant=tenant,
        )
        # Input files given as paths are read here (by the asyncio client, in a thread).
        spec = await blocking(build) if inputs else build()
        if require_schedulable:
            refuse_unschedulable(await self.store.unschedulable(spec))
        outcome = await self.store.submit(spec)
        return AsyncJob(self, outcome.job_id)

    async def get(self, job_id: str) -> AsyncJob:
        """The handle of an existing job; raises ``JobNotFound`` if there is none."""
        await self.status(job_id, explain=False)
        return AsyncJob(self, job_id)

    async def preview(self, job_id: str) -> Preview | None:
        """The latest live preview of a running job (:class:`~fleetq.previews.Preview`:
        image bytes, content type, time), or None when there is none: the job is not running,
        its backend sends no previews (ComfyUI without ``--preview-method``, A1111 with live
        previews off) or the last one expired (``FLEETQ_PREVIEW_TTL_MS``). A preview is never
        one of the job's outputs."""
        job_id = check_job_id(job_id)
        values = await self.store.command("hgetall", self.store.keys.preview(job_id))
        return preview_from_hash(job_id, values)

    async def status(
        self,
        job_id: str,
        explain: bool = True,
        *,
        eta: bool = True,
        fleet: FleetView | None = None,
        documents: Mapping[str, Capabilities] | None = None,
    ) -> JobStatus:
        """One job's state, queue position, progress, attempts, host and GPU, and error; for
        a queued job also its estimated start and finish (``eta``; False skips that read).
        For a queued job that no live GPU can run (``explain``, the default),
        ``unschedulable`` says why, against the closest GPU. ``fleet``: a
        :meth:`fleet` view the caller has just read, used instead of reading it again;
        ``documents``: published GPU capabilities by digest the caller holds already (a
        digest names its content), so only the others are read."""
        status = await self.store.run(self.store.protocol.status(check_job_id(job_id)))
        read = None
        if eta and status.state is JobState.QUEUED:
            read = await self.store.run(self.store.protocol.eta(job_id))
            if read is None:  # claimed or cancelled since: what it is now
                return await self.status(
                    job_id, explain, eta=False, fleet=fleet, documents=documents
                )
        explaining = explain and needs_explaining(status)
        if read is None and not explaining:
            return status
        # One read of the fleet and of its GPUs' published capabilities (which classes each
        # can run) serves both the estimate and the explanation.
        if fleet is None:
            fleet = await self.store.fleet()
        live = await self.store.live_documents(fleet, status.service, documents)
        if read is not None:
            status = replace(status, eta=estimate_from(read, fleet, live))
        return explain_unschedulable(status, fleet, live) if explaining else status

    async def cancel(self, job_id: str, by: str = "client") -> str:
        """Cancel a job. A queued job is removed at once (returns ``"cancelled"``); a running
        job is marked and its GPU's puller interrupts the backend (returns ``"cancelling"``)."""
        return await self.store.run(self.store.protocol.cancel(check_job_id(job_id), by))

    async def bump(self, job_id: str, priority: int, by: str = "client") -> int | None:
        """Set a queued job's priority; returns its new queue position (0 = next). ``by``
        (who asked) is recorded in the job's timeline and the event log."""
        call = self.store.protocol.bump(check_job_id(job_id), check_priority(priority), by=by)
        return await self.store.run(call)

    async def bump_by(self, job_id: str, delta: int, by: str = "client") -> Bumped:
        """Raise (or lower, with a negative ``delta``) a queued job's priority by ``delta``,
        atomically in Redis, clamped to -1000..1000; returns the new priority and position."""
        return await self.store.run(self.store.protocol.bump_by(check_job_id(job_id), delta, by))

    async def retry(self, job_id: str, by: str = "client") -> int | None:
        """Send a failed or cancelled job back to its queue; returns its queue position.
        ``by`` (who asked) is recorded in the job's timeline and the event log."""
        return await self.store.run(self.store.protocol.retry(check_job_id(job_id), by=by))

    async def jobs(
        self, state: str = "queued", service: str | None = None, limit: int = 50
    ) -> list[JobStatus]:
        """One bounded page of jobs in ``state``: queued by priority then age, running by
        priority then start, finished newest first."""
        services = [service] if service else []
        return await self.store.run(self.store.protocol.list_jobs(str(state), services, limit))

    async def stats(self) -> Stats:
        """Counts per service and state, rates of the last minute, oldest wait, pauses."""
        return await self.store.run(self.store.protocol.stats(self.settings.services))

    async def set_tenant_weight(self, tenant: str, weight: float) -> None:
        """Give ``tenant`` a fair-share weight (0.1..1000; default 1): within a priority band,
        tenants with queued jobs are served in proportion to their weights. It applies to jobs
        submitted from now on."""
        await self.store.command(*weight_command(self.store.keys.tenants, tenant, weight))

    async def tenant_weights(self) -> dict[str, float]:
        """The tenants given a weight other than 1, with their weights."""
        return parse_weights(await self.store.command("hgetall", self.store.keys.tenants))

    async def pause(self, service: str, by: str = "client") -> bool:
        """Stop claims from a service queue (jobs stay queued). True if it was running.
        ``by`` (who asked) goes to the event log; :meth:`changed_by` tells it later."""
        return await self.store.run(self.store.protocol.set_paused(service, True, by=by))

    async def resume(self, service: str, by: str = "client") -> bool:
        """Let a paused service queue be claimed from again. True if it was paused."""
        return await self.store.run(self.store.protocol.set_paused(service, False, by=by))

    async def drain(self, target: str, by: str = "client") -> bool:
        """Stop claims on a host (``"gpu-07"``) or one GPU (``"gpu-07:3"``). ``by`` (who
        asked) goes to the event log; :meth:`changed_by` tells it later."""
        call = self.store.protocol.set_drained(check_host_target(target), True, by=by)
        return await self.store.run(call)

    async def undrain(self, target: str, by: str = "client") -> bool:
        """Let a drained host or GPU claim jobs again."""
        call = self.store.protocol.set_drained(check_host_target(target), False, by=by)
        return await self.store.run(call)

    async def changed_by(self, targets: Sequence[str]) -> dict[str, str]:
        """Who made the last pause or resume of services and drain or undrain of hosts and
        GPUs: ``targets`` are ``"paused:<service>"`` or ``"drained:<host>[:<gpu>]"``; the
        answer maps those with a recorded operator to it (e.g. ``"cli:ana@ops-1"``)."""
        return await self.store.changed_by(targets)

    async def fleet(self) -> FleetView:
        """Every supervisor host with its published GPU readings; offline hosts included."""
        return await self.store.fleet()

    async def send_control(self, host: str, command: dict[str, Any], by: str = "client") -> str:
        """Send an operator command to one supervisor, e.g. a simulated GPU fault:
        ``{"type": "fault", "gpu": 2, "spec": "xid=79"}``. ``by`` (who asked) travels with
        it, for the supervisor's log."""
        return await self.store.send_control(check_host_target(host), {**command, "by": by})

    async def result(self, job_id: str) -> JobResult:
        """The outputs of a completed job; raises ``JobFailed`` / ``JobCancelled`` otherwise."""
        return await self.result_of(await self.status(job_id, explain=False))

    async def result_of(self, status: JobStatus) -> JobResult:
        """The result that a job's final ``status`` stands for (reads the stored outputs)."""
        if status.state is JobState.FAILED:
            raise JobFailed(status.id, status.error)
        if status.state is JobState.CANCELLED:
            raise JobCancelled(status.id)
        if status.state is not JobState.COMPLETED:
            raise InvalidTransition(status.id, str(status.state), "read the result of")
        blobs = await self.store.output_blobs(status.id) if self.outputs.needs_blobs(status) else {}
        return await self.outputs.result(status, blobs)
