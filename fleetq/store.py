"""Runs protocol calls on Redis: :class:`SyncStore` for threads, :class:`AsyncStore` for asyncio.

The stores also hold the few plain commands that are not state changes: reading outputs, the
blocking waits on wake-up markers and job streams, and the fleet records of supervisors.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript, Script

from fleetq.config import Settings
from fleetq.connection import CONNECTION_ERRORS, connect, connect_async, unavailable
from fleetq.errors import FleetqError, OutputsExpired
from fleetq.keys import Keys
from fleetq.model import JobSpec, JobStatus, Output
from fleetq.protocol import Call, Protocol, SubmitOutcome, _IdCollision, text
from fleetq.scripts import SCRIPT_NAMES, script_source

T = TypeVar("T")
StreamEntry = tuple[str, dict[str, str]]


def new_job_id() -> str:
    """A random 64-bit job id as 16 hex digits."""
    return secrets.token_hex(8)


def _decode_entries(reply: Any) -> list[StreamEntry]:
    entries: list[StreamEntry] = []
    for _stream, items in reply or []:
        for entry_id, fields in items:
            entries.append((text(entry_id), {text(k): text(v) for k, v in fields.items()}))
    return entries


def _outputs(status: JobStatus, blobs: dict[bytes, bytes]) -> tuple[Output, ...]:
    """Pair a finished job's manifest with the stored bytes."""
    if status.outputs and not blobs:
        raise OutputsExpired(
            f"the outputs of job {status.id} have expired (kept for FLEETQ_OUTPUT_TTL_S)"
        )
    return tuple(
        Output(f.filename, f.content_type, blobs.get(str(i).encode(), b""))
        for i, f in enumerate(status.outputs)
    )


class SyncStore:
    """Protocol calls and plain reads over a synchronous Redis client."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.protocol = Protocol(settings)
        self.keys: Keys = self.protocol.keys
        self.redis = client if client is not None else connect(settings)
        self._scripts: dict[str, Script] = {
            name: self.redis.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    def run(self, call: Call[T]) -> T:
        try:
            reply = self._scripts[call.script](keys=list(call.keys), args=list(call.args))
        except CONNECTION_ERRORS as e:
            raise unavailable(self.settings, e) from e
        return call.parse(reply)

    def submit(self, spec: JobSpec) -> SubmitOutcome:
        while True:
            try:
                return self.run(self.protocol.submit(spec, new_job_id()))
            except _IdCollision:
                continue

    def command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.redis, name)(*args, **kwargs)
        except CONNECTION_ERRORS as e:
            raise unavailable(self.settings, e) from e

    def output_blobs(self, job_id: str) -> dict[bytes, bytes]:
        return dict(self.command("hgetall", self.keys.outputs(job_id)))

    def read_job_events(self, job_id: str, last_id: str, block_ms: int) -> list[StreamEntry]:
        reply = self.command("xread", {self.keys.job_events(job_id): last_id}, block=block_ms)
        return _decode_entries(reply)

    def last_job_event_id(self, job_id: str) -> str:
        last = self.command("xrevrange", self.keys.job_events(job_id), count=1)
        return text(last[0][0]) if last else "0-0"

    def read_events(self, last_id: str, block_ms: int | None, count: int = 500) -> list[StreamEntry]:
        reply = self.command("xread", {self.keys.events: last_id}, block=block_ms, count=count)
        return _decode_entries(reply)

    def close(self) -> None:
        self.redis.close()


class AsyncStore:
    """Protocol calls and plain reads over an asyncio Redis client."""

    def __init__(self, settings: Settings, client: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.protocol = Protocol(settings)
        self.keys: Keys = self.protocol.keys
        self.redis = client if client is not None else connect_async(settings)
        self._scripts: dict[str, AsyncScript] = {
            name: self.redis.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    async def run(self, call: Call[T]) -> T:
        try:
            reply = await self._scripts[call.script](keys=list(call.keys), args=list(call.args))
        except CONNECTION_ERRORS as e:
            raise unavailable(self.settings, e) from e
        return call.parse(reply)

    async def submit(self, spec: JobSpec) -> SubmitOutcome:
        while True:
            try:
                return await self.run(self.protocol.submit(spec, new_job_id()))
            except _IdCollision:
                continue

    async def command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self.redis, name)(*args, **kwargs)
        except CONNECTION_ERRORS as e:
            raise unavailable(self.settings, e) from e

    async def output_blobs(self, job_id: str) -> dict[bytes, bytes]:
        return dict(await self.command("hgetall", self.keys.outputs(job_id)))

    async def read_job_events(self, job_id: str, last_id: str, block_ms: int) -> list[StreamEntry]:
        reply = await self.command("xread", {self.keys.job_events(job_id): last_id}, block=block_ms)
        return _decode_entries(reply)

    async def last_job_event_id(self, job_id: str) -> str:
        last = await self.command("xrevrange", self.keys.job_events(job_id), count=1)
        return text(last[0][0]) if last else "0-0"

    async def read_events(
        self, last_id: str, block_ms: int | None, count: int = 500
    ) -> list[StreamEntry]:
        reply = await self.command("xread", {self.keys.events: last_id}, block=block_ms, count=count)
        return _decode_entries(reply)

    async def wait_for_work(self, services: Sequence[str], timeout_s: float) -> bool:
        """Block until a wake-up marker of one of ``services`` is set, or the timeout passes.

        Returns True when woken by a marker. The timeout is capped below the socket timeout.
        """
        timeout = max(0.01, min(timeout_s, self.settings.block_timeout_s))
        markers = [self.keys.marker(s) for s in services]
        return await self.command("bzpopmin", markers, timeout=timeout) is not None

    async def aclose(self) -> None:
        await self.redis.aclose()


__all__ = ["AsyncStore", "FleetqError", "SyncStore", "new_job_id", "_outputs"]
