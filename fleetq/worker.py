"""The worker side of the protocol, for supervisors (asyncio): claim, renew, finish, reap.

Every write about a claimed job carries its lease token; a write with a stale token raises
:class:`~fleetq.errors.StaleLease` and changes nothing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

import redis.asyncio as aioredis

from fleetq.config import Settings
from fleetq.connection import CONNECTION_ERRORS, unavailable
from fleetq.model import ClaimedJob, FaultKind, JobError, Output
from fleetq.protocol import ClaimOutcome, ReapOutcome
from fleetq.store import AsyncStore, StreamEntry, cancel_safe


class WorkerQueue:
    """What one supervisor needs from the queue; one instance may serve every puller."""

    def __init__(self, settings: Settings, redis: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.store = AsyncStore(settings, redis)
        self.protocol = self.store.protocol
        self.keys = self.store.keys

    async def aclose(self) -> None:
        await self.store.aclose()

    async def try_claim(self, services: Sequence[str], host: str, gpu: int) -> ClaimOutcome:
        """One claim attempt, without blocking."""
        token = secrets.token_hex(16)
        return await self.store.run(self.protocol.claim(services, host, gpu, token))

    async def claim(
        self,
        services: Sequence[str],
        host: str,
        gpu: int,
        timeout_s: float,
        blocking: AsyncStore | None = None,
    ) -> ClaimOutcome:
        """Claim the best job, blocking up to ``timeout_s`` for one to arrive.

        Idle claimers block on the services' wake-up markers (BZPOPMIN), so a submit wakes
        exactly one of them within milliseconds; nothing polls. Pass a ``blocking`` store with
        its own connection pool when many claimers share this queue, so a blocked call never
        holds a connection another coroutine needs. Returns an outcome without a job when the
        time runs out or when the host or GPU is drained.
        """
        deadline = time.monotonic() + timeout_s
        waiter = blocking or self.store
        while True:
            outcome = await self.try_claim(services, host, gpu)
            if outcome.job is not None or outcome.drained:
                return outcome
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return outcome
            wait_s = remaining
            retry_due = outcome.next_ready_in_ms is not None
            if outcome.next_ready_in_ms is not None:
                wait_s = min(wait_s, outcome.next_ready_in_ms / 1000 + 0.001)
            woken = await waiter.wait_for_work(services, wait_s)
            if not woken and not retry_due and time.monotonic() >= deadline:
                return outcome  # nothing arrived: no point in another claim round trip

    async def renew(
        self, job: ClaimedJob, progress: float | None = None, progress_text: str = ""
    ) -> bool:
        """Extend the lease (and record progress); True when a cancel was requested."""
        return await self.store.run(self.protocol.renew(job.id, job.token, progress, progress_text))

    async def complete(self, job: ClaimedJob, outputs: Sequence[Output]) -> None:
        await self.store.run(self.protocol.complete(job.id, job.token, outputs))

    async def fail(self, job: ClaimedJob, kind: FaultKind, error: JobError) -> str:
        """Record a failed attempt; returns failed, retrying, requeued or cancelled."""
        call = self.protocol.fail(job.id, job.token, kind, error, job.attempts)
        return await self.store.run(call)

    async def ack_cancel(self, job: ClaimedJob) -> None:
        await self.store.run(self.protocol.ack_cancel(job.id, job.token))

    async def reap(self, owner: str) -> ReapOutcome:
        return await self.store.run(self.protocol.reap(owner))

    async def job_events(self, job_id: str, last_id: str, block_ms: int) -> list[StreamEntry]:
        """Block on a job's own stream (cancel requests arrive here within milliseconds)."""
        return await self.store.read_job_events(job_id, last_id, block_ms)

    async def rewake(self, services: Sequence[str]) -> None:
        """Put back the wake-up markers of ``services`` (a claimer that was woken but may not
        claim after all passes the wake-up on to another one)."""
        try:
            async with self.store.redis.pipeline(transaction=False) as pipe:
                for service in services:
                    pipe.zadd(self.keys.marker(service), {"0": 0})
                await cancel_safe(pipe.execute())
        except CONNECTION_ERRORS as e:
            raise unavailable(self.settings, e) from e

    async def gate(self, host: str, gpu: int) -> tuple[bool, set[str]]:
        """One round trip before a claim: is this GPU (or its host) drained, and which services
        are paused?"""
        try:
            async with self.store.redis.pipeline(transaction=False) as pipe:
                pipe.smismember(self.keys.drained, [host, f"{host}:{gpu}"])
                pipe.smembers(self.keys.paused)
                drained, paused = await cancel_safe(pipe.execute())
        except CONNECTION_ERRORS as e:
            raise unavailable(self.settings, e) from e
        return any(bool(m) for m in drained), {m.decode() for m in paused}

    async def is_drained(self, host: str, gpu: int) -> bool:
        members = await self.store.command("smismember", self.keys.drained, [host, f"{host}:{gpu}"])
        return any(bool(m) for m in members)

    async def paused_services(self) -> set[str]:
        return {m.decode() for m in await self.store.command("smembers", self.keys.paused)}
