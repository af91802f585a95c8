"""The client helper for asyncio: the same API as :mod:`fleetq.client`, awaitable.

Example::

    from fleetq import AsyncClient

    async with AsyncClient.from_env() as client:
        job = await client.submit(workflow, service="comfyui")
        result = await job.wait(timeout_s=600)
        result.save("out/")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import redis.asyncio as aioredis

from fleetq.config import Settings
from fleetq.errors import InvalidTransition, JobCancelled, JobFailed, RedisUnavailable
from fleetq.eta import estimate_from
from fleetq.fleet import FleetView
from fleetq.model import JobResult, JobState, JobStatus, Stats
from fleetq.outage import OutageTolerance
from fleetq.protocol import Bumped
from fleetq.store import AsyncStore, _outputs
from fleetq.validation import build_spec, check_host_target, check_job_id, check_priority

AsyncProgressCallback = Callable[[JobStatus], Awaitable[None] | None]
T = TypeVar("T")


class AsyncJob:
    """A handle on one submitted job (asyncio)."""

    def __init__(self, client: AsyncClient, job_id: str) -> None:
        self.client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"AsyncJob({self.id!r})"

    async def status(self) -> JobStatus:
        return await self.client.status(self.id)

    async def cancel(self) -> str:
        return await self.client.cancel(self.id)

    async def result(self) -> JobResult:
        return await self.client.result(self.id)

    async def wait(
        self, timeout_s: float | None = None, on_progress: AsyncProgressCallback | None = None
    ) -> JobResult:
        """Wait for the end of the job; see :meth:`fleetq.client.Job.wait`.

        ``on_progress`` may be a plain function or a coroutine function.
        """
        store = self.client.store
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        outage = _AsyncOutage(deadline, f"waiting for job {self.id} ({timeout_s} s)")
        last_id = await outage.retry(lambda: store.last_job_event_id(self.id))
        seen: tuple[Any, ...] | None = None
        while True:
            status = await outage.retry(self.status)
            if status.is_terminal:
                return await self.client.result_of(status)
            marker = (status.state, status.progress, status.progress_text, status.claims)
            if on_progress is not None and marker != seen:
                maybe = on_progress(status)
                if maybe is not None:
                    await maybe
            seen = marker
            block_s = self.client.settings.block_timeout_s
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"job {self.id} still {status.state} after {timeout_s} s")
                block_s = min(block_s, remaining)
            block_ms = max(1, int(block_s * 1000))
            entries = await outage.retry(partial(store.read_job_events, self.id, last_id, block_ms))
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
                await asyncio.sleep(self.tolerance.backoff(e, self.deadline, self.what))
                continue
            self.tolerance.recovered()
            return value


class AsyncClient:
    """Submit and manage jobs of one fleet, from asyncio code."""

    def __init__(
        self, settings: Settings | None = None, *, redis: aioredis.Redis | None = None
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.store = AsyncStore(self.settings, redis)

    @classmethod
    def from_url(cls, url: str, **settings: Any) -> AsyncClient:
        return cls(Settings.from_env(redis_url=url, **settings))

    @classmethod
    def from_env(cls, **settings: Any) -> AsyncClient:
        return cls(Settings.from_env(**settings))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
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
    ) -> AsyncJob:
        """Validate and enqueue a workflow; see :meth:`fleetq.Client.submit`."""
        spec = build_spec(
            workflow,
            self.settings,
            service=service,
            priority=priority,
            max_attempts=max_attempts,
            timeout_s=timeout_s,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )
        return AsyncJob(self, (await self.store.submit(spec)).job_id)

    async def get(self, job_id: str) -> AsyncJob:
        await self.status(job_id)
        return AsyncJob(self, job_id)

    async def status(self, job_id: str, *, eta: bool = True) -> JobStatus:
        """State, queue position, progress, attempts, host and GPU, error and timestamps; for
        a queued job also its estimated start and finish (``eta``; False skips that read)."""
        status = await self.store.run(self.store.protocol.status(check_job_id(job_id)))
        if not eta or status.state is not JobState.QUEUED:
            return status
        read, fleet = await asyncio.gather(
            self.store.run(self.store.protocol.eta(job_id)), self.store.fleet()
        )
        return replace(status, eta=None if read is None else estimate_from(read, fleet))

    async def cancel(self, job_id: str, by: str = "client") -> str:
        return await self.store.run(self.store.protocol.cancel(check_job_id(job_id), by))

    async def bump(self, job_id: str, priority: int) -> int | None:
        call = self.store.protocol.bump(check_job_id(job_id), check_priority(priority))
        return await self.store.run(call)

    async def bump_by(self, job_id: str, delta: int, by: str = "client") -> Bumped:
        """Move a queued job's priority by ``delta`` atomically (see :meth:`Client.bump_by`)."""
        return await self.store.run(self.store.protocol.bump_by(check_job_id(job_id), delta, by))

    async def retry(self, job_id: str) -> int | None:
        return await self.store.run(self.store.protocol.retry(check_job_id(job_id)))

    async def jobs(
        self, state: str = "queued", service: str | None = None, limit: int = 50
    ) -> list[JobStatus]:
        services = [service] if service else []
        return await self.store.run(self.store.protocol.list_jobs(str(state), services, limit))

    async def stats(self) -> Stats:
        return await self.store.run(self.store.protocol.stats(self.settings.services))

    async def pause(self, service: str) -> bool:
        return await self.store.run(self.store.protocol.set_paused(service, True))

    async def resume(self, service: str) -> bool:
        return await self.store.run(self.store.protocol.set_paused(service, False))

    async def drain(self, target: str) -> bool:
        call = self.store.protocol.set_drained(check_host_target(target), True)
        return await self.store.run(call)

    async def undrain(self, target: str) -> bool:
        call = self.store.protocol.set_drained(check_host_target(target), False)
        return await self.store.run(call)

    async def fleet(self) -> FleetView:
        return await self.store.fleet()

    async def result(self, job_id: str) -> JobResult:
        return await self.result_of(await self.status(job_id))

    async def result_of(self, status: JobStatus) -> JobResult:
        if status.state is JobState.FAILED:
            raise JobFailed(status.id, status.error)
        if status.state is JobState.CANCELLED:
            raise JobCancelled(status.id)
        if status.state is not JobState.COMPLETED:
            raise InvalidTransition(status.id, str(status.state), "read the result of")
        blobs = await self.store.output_blobs(status.id) if status.outputs else {}
        return JobResult(status.id, _outputs(status, blobs))
