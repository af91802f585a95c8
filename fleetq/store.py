"""Runs protocol calls on Redis: :class:`SyncStore` for threads, :class:`AsyncStore` for asyncio.

The stores also hold the few plain commands that are not state changes: reading outputs, the
blocking waits on wake-up markers and job streams, and the fleet records of supervisors.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript, Script

from fleetq.config import Settings
from fleetq.connection import (
    CONNECTION_ERRORS,
    READ_ONLY_SCRIPTS,
    WAITED_SCRIPTS,
    check_replicated,
    connect,
    connect_async,
    raise_for_reply,
    run_script_ro,
    run_script_ro_async,
    run_script_waited,
    run_script_waited_async,
    unavailable,
)
from fleetq.errors import FleetqError
from fleetq.fleet import FORGET_HOST_AFTER_MS, HOST_TTL_MS, FleetView, encode_record, parse_fleet
from fleetq.keys import Keys
from fleetq.model import JobSpec
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


async def cancel_safe(awaitable: Awaitable[T]) -> T:
    """Await a redis-py call so that cancelling the caller always cancels the caller.

    A task cancelled while redis-py (5.x to 8.x) reads a reply can lose the cancellation and
    go on waiting (seen with blocking reads: the cancelled task kept running). The call runs
    in its own task; the caller waits on it through a shield, so the caller's cancellation is
    always delivered; the orphaned call is then cancelled and left to end on its own.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_consume_result)
        raise


def _consume_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


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
        acked = None
        try:
            script = self._scripts[call.script]
            if self.settings.wait_replicas and call.script in WAITED_SCRIPTS:
                reply, acked = run_script_waited(
                    self.redis, script, call.keys, call.args, self.settings
                )
            elif call.script in READ_ONLY_SCRIPTS:
                reply = run_script_ro(self.redis, script, call.keys, call.args)
            else:
                reply = script(keys=list(call.keys), args=list(call.args))
        except CONNECTION_ERRORS as e:
            raise unavailable(self.settings, e) from e
        except redis.exceptions.ResponseError as e:
            raise_for_reply(self.settings, e, call.script)
            raise
        result = call.parse(reply)
        if acked is not None:  # ARGV[3] of submit and complete is the job id
            check_replicated(self.settings, call.script, str(call.args[2]), acked)
        return result

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
        except redis.exceptions.ResponseError as e:
            raise_for_reply(self.settings, e, name)
            raise

    def output_blobs(self, job_id: str) -> dict[bytes, bytes]:
        return dict(self.command("hgetall", self.keys.outputs(job_id)))

    def read_job_events(self, job_id: str, last_id: str, block_ms: int) -> list[StreamEntry]:
        reply = self.command("xread", {self.keys.job_events(job_id): last_id}, block=block_ms)
        return _decode_entries(reply)

    def last_job_event_id(self, job_id: str) -> str:
        last = self.command("xrevrange", self.keys.job_events(job_id), count=1)
        return text(last[0][0]) if last else "0-0"

    def read_events(
        self, last_id: str, block_ms: int | None, count: int = 500
    ) -> list[StreamEntry]:
        reply = self.command("xread", {self.keys.events: last_id}, block=block_ms, count=count)
        return _decode_entries(reply)

    def fleet(self) -> FleetView:
        """Every known supervisor host with its GPUs (offline hosts included)."""
        hosts = self.command("zrange", self.keys.hosts, 0, -1, withscores=True)
        if not hosts:
            return FleetView(())
        names = [text(h) for h, _ in hosts]
        host_raw = self.command("mget", [self.keys.host(h) for h in names])
        gpus_raw = self.command("mget", [self.keys.gpus(h) for h in names])
        return parse_fleet(hosts, host_raw, gpus_raw)

    def send_control(self, host: str, command: dict[str, Any]) -> str:
        """Queue an operator command (e.g. a simulated fault) for one supervisor, and signal
        it so it reads the command at once."""
        return self.run(self.protocol.send_control(host, encode_record(command)))

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
        acked = None
        try:
            script = self._scripts[call.script]
            if self.settings.wait_replicas and call.script in WAITED_SCRIPTS:
                reply, acked = await cancel_safe(
                    run_script_waited_async(self.redis, script, call.keys, call.args, self.settings)
                )
            elif call.script in READ_ONLY_SCRIPTS:
                reply = await cancel_safe(
                    run_script_ro_async(self.redis, script, call.keys, call.args)
                )
            else:
                reply = await cancel_safe(script(keys=list(call.keys), args=list(call.args)))
        except CONNECTION_ERRORS as e:
            raise unavailable(self.settings, e) from e
        except redis.exceptions.ResponseError as e:
            raise_for_reply(self.settings, e, call.script)
            raise
        result = call.parse(reply)
        if acked is not None:  # ARGV[3] of submit and complete is the job id
            check_replicated(self.settings, call.script, str(call.args[2]), acked)
        return result

    async def submit(self, spec: JobSpec) -> SubmitOutcome:
        while True:
            try:
                return await self.run(self.protocol.submit(spec, new_job_id()))
            except _IdCollision:
                continue

    async def command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await cancel_safe(getattr(self.redis, name)(*args, **kwargs))
        except CONNECTION_ERRORS as e:
            raise unavailable(self.settings, e) from e
        except redis.exceptions.ResponseError as e:
            raise_for_reply(self.settings, e, name)
            raise

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
        reply = await self.command(
            "xread", {self.keys.events: last_id}, block=block_ms, count=count
        )
        return _decode_entries(reply)

    async def wait_for_work(self, services: Sequence[str], timeout_s: float) -> bool:
        """Block until a wake-up marker of one of ``services`` is set, or the timeout passes.

        Returns True when woken by a marker. The timeout is capped below the socket timeout.
        """
        timeout = max(0.01, min(timeout_s, self.settings.block_timeout_s))
        markers = [self.keys.marker(s) for s in services]
        return await self.command("bzpopmin", markers, timeout=timeout) is not None

    async def fleet(self) -> FleetView:
        """Every known supervisor host with its GPUs (offline hosts included)."""
        hosts = await self.command("zrange", self.keys.hosts, 0, -1, withscores=True)
        if not hosts:
            return FleetView(())
        names = [text(h) for h, _ in hosts]
        host_raw = await self.command("mget", [self.keys.host(h) for h in names])
        gpus_raw = await self.command("mget", [self.keys.gpus(h) for h in names])
        return parse_fleet(hosts, host_raw, gpus_raw)

    async def publish_host(
        self,
        host: str,
        record: dict[str, Any],
        gpus: Sequence[dict[str, Any]],
        ttl_ms: int = HOST_TTL_MS,
    ) -> None:
        """Publish one supervisor's host record and GPU readings, both expiring after ttl_ms."""
        k = self.keys
        now_ms = int(time.time() * 1000)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(k.host(host), encode_record(record), px=ttl_ms)
                pipe.set(k.gpus(host), encode_record(list(gpus)), px=ttl_ms)
                pipe.zadd(k.hosts, {host: now_ms})
                pipe.zremrangebyscore(k.hosts, "-inf", now_ms - FORGET_HOST_AFTER_MS)
                await cancel_safe(pipe.execute())
        except CONNECTION_ERRORS as e:
            raise unavailable(self.settings, e) from e
        except redis.exceptions.ResponseError as e:
            raise_for_reply(self.settings, e, "publish the host record")
            raise

    async def read_control(
        self, host: str, last_id: str, block_ms: int | None
    ) -> list[StreamEntry]:
        reply = await self.command(
            "xread", {self.keys.control(host): last_id}, block=block_ms, count=50
        )
        return _decode_entries(reply)

    async def aclose(self) -> None:
        await self.redis.aclose()


__all__ = ["AsyncStore", "FleetqError", "SyncStore", "new_job_id"]
