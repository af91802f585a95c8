"""Runs protocol calls on Redis, and holds the few plain commands that are not state changes:
reading outputs, the blocking waits on wake-up markers and streams, and the fleet records of
supervisors. The public module is :mod:`fleetq.store`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from fleetq._async.connection import connect, run_script_ro, run_script_waited
from fleetq._async_support import AsyncRedis, AsyncScript, cancel_safe
from fleetq.config import Settings
from fleetq.fleet import FORGET_HOST_AFTER_MS, HOST_TTL_MS, FleetView, encode_record, parse_fleet
from fleetq.keys import Keys
from fleetq.model import JobSpec
from fleetq.protocol import Call, Protocol, SubmitOutcome, _IdCollision, text
from fleetq.redis_errors import check_replicated, translate_errors
from fleetq.redis_options import READ_ONLY_SCRIPTS, WAITED_SCRIPTS
from fleetq.requirements import Capabilities, Requirements
from fleetq.schedulable import (
    digests,
    live_gpus,
    parse_classes,
    parse_documents,
    spec_requirements,
    why_unschedulable,
)
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


class AsyncStore:
    """Protocol calls and plain reads over one Redis client."""

    def __init__(self, settings: Settings, client: AsyncRedis | None = None) -> None:
        self.settings = settings
        self.protocol = Protocol(settings)
        self.keys: Keys = self.protocol.keys
        self.redis = client if client is not None else connect(settings)
        self._scripts: dict[str, AsyncScript] = {
            name: self.redis.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    async def run(self, call: Call[T]) -> T:
        """Run one protocol call and parse its reply; waits for replicas after the writes a
        user is told about when ``Settings.wait_replicas`` asks for it."""
        acked = None
        with translate_errors(self.settings, call.script):
            script = self._scripts[call.script]
            if self.settings.wait_replicas and call.script in WAITED_SCRIPTS:
                reply, acked = await cancel_safe(
                    run_script_waited(self.redis, script, call.keys, call.args, self.settings)
                )
            elif call.script in READ_ONLY_SCRIPTS:
                reply = await cancel_safe(run_script_ro(self.redis, script, call.keys, call.args))
            else:
                reply = await cancel_safe(script(keys=list(call.keys), args=list(call.args)))
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
        """Send one plain Redis command (a method name of the redis-py client)."""
        with translate_errors(self.settings, name):
            return await cancel_safe(getattr(self.redis, name)(*args, **kwargs))

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
        keys = self.keys
        raw = await self.command(
            "mget", [*(keys.host(h) for h in names), *(keys.gpus(h) for h in names)]
        )
        return parse_fleet(hosts, raw[: len(names)], raw[len(names) :])

    async def capability_documents(self, digests: Sequence[str]) -> dict[str, Capabilities]:
        """Published GPU capabilities by digest (those expired left out)."""
        if not digests:
            return {}
        raw = await self.command("mget", [self.keys.capabilities(d) for d in digests])
        return parse_documents({d: text(r) for d, r in zip(digests, raw, strict=True)})

    async def requirement_classes(
        self, service: str, class_ids: Sequence[str]
    ) -> dict[str, Requirements]:
        """The requirements of some requirement classes of ``service``, by class id (unknown
        or unreadable ones left out)."""
        if not class_ids:
            return {}
        raw = await self.command("hmget", self.keys.classes(service), list(class_ids))
        return parse_classes({c: text(r) for c, r in zip(class_ids, raw, strict=True)})

    async def live_documents(
        self, fleet: FleetView, service: str, known: Mapping[str, Capabilities] | None = None
    ) -> dict[str, Capabilities]:
        """The published capabilities of the live GPUs of ``service`` in ``fleet``, by digest.
        ``known``: documents the caller holds already (a digest names its content, so they
        are never stale); only the others are read."""
        wanted = sorted(digests(live_gpus(fleet, service), service))
        held = {d: known[d] for d in wanted if known is not None and d in known}
        missing = [d for d in wanted if d not in held]
        return {**held, **await self.capability_documents(missing)} if missing else held

    async def unschedulable(self, spec: JobSpec) -> str | None:
        """Why no live GPU could run a job of ``spec`` now (None: one could)."""
        fleet = await self.fleet()
        found = sorted(digests(live_gpus(fleet, spec.service), spec.service))
        documents = await self.capability_documents(found)
        return why_unschedulable(spec_requirements(spec), spec.service, fleet, documents)

    async def send_control(self, host: str, command: dict[str, Any]) -> str:
        """Queue an operator command (e.g. a simulated fault) for one supervisor, and signal
        it so it reads the command at once."""
        return await self.run(self.protocol.send_control(host, encode_record(command)))

    async def changed_by(self, targets: Sequence[str]) -> dict[str, str]:
        """The operator of the last change of each pause (``paused:<svc>``) or drain
        (``drained:<target>``) target, where one was recorded."""
        if not targets:
            return {}
        fields = [f"by:{t}" for t in targets]
        raw = await self.command("hmget", self.keys.last_request, fields)
        return {t: text(v) for t, v in zip(targets, raw, strict=True) if v}

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
        with translate_errors(self.settings, "publish the host record"):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(k.host(host), encode_record(record), px=ttl_ms)
                pipe.set(k.gpus(host), encode_record(list(gpus)), px=ttl_ms)
                pipe.zadd(k.hosts, {host: now_ms})
                pipe.zremrangebyscore(k.hosts, "-inf", now_ms - FORGET_HOST_AFTER_MS)
                await cancel_safe(pipe.execute())

    async def read_control(
        self, host: str, last_id: str, block_ms: int | None
    ) -> list[StreamEntry]:
        reply = await self.command(
            "xread", {self.keys.control(host): last_id}, block=block_ms, count=50
        )
        return _decode_entries(reply)

    async def aclose(self) -> None:
        await self.redis.aclose()
