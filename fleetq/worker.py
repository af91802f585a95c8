"""The worker API: everything a supervisor (asyncio) asks of the hub, over a bounded number of
Redis connections.

A supervisor holds one :class:`WorkerQueue` for all its GPUs. It claims (and waits for work),
renews, finishes, watches its running jobs for cancels, publishes its fleet records and reads its
operator command stream through it, and never reaches Redis another way. Whatever the number
of GPUs, the queue holds two connections: one blocked on the services' wake-up markers and on
the machine's signal (a :class:`~fleetq.wakeups.WakeupWaiter`), and one for every other command
(two when ``wait_replicas`` makes writes wait for replicas). The streams it follows (operator
commands, the streams of running jobs) are read by a :class:`~fleetq.streamwatch.StreamWatcher`
over the command connection whenever the signal says one of them has news: every script that
writes there something a supervisor must react to (a cancel, an operator command) sets the
signal of the supervisor's host in the same step, and a drain sets it so that idle claimers
check their gate again.

Every write about a claimed job carries its lease token; a write with a stale token raises
:class:`~fleetq.errors.StaleLease` and changes nothing.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import redis.asyncio as aioredis

from fleetq.classes import ClassTable, ServiceScope
from fleetq.config import Settings
from fleetq.connection import connect_async
from fleetq.errors import InputsMissing, RedisUnavailable
from fleetq.fleet import HOST_TTL_MS
from fleetq.inputs import parse_manifest
from fleetq.model import ClaimedJob, FaultKind, JobError, Output
from fleetq.outputs.base import StoredOutputs
from fleetq.outputs.writers import open_writer
from fleetq.protocol import SIGNAL_GATE, ClaimOutcome, PreviewWrite, ReapOutcome, text
from fleetq.records import GpuRecord, HostRecord
from fleetq.store import AsyncStore, StreamEntry, tracking_calls, when_ended
from fleetq.streamwatch import StreamWatcher, Subscription
from fleetq.wakeups import WakeupWaiter

__all__ = [
    "ClaimOutcome", "ClassTable", "MayClaim", "PreviewWrite", "ReapOutcome", "Scopes",
    "ServiceScope", "StreamEntry", "WorkerQueue",
]  # fmt: skip

T = TypeVar("T")

#: The gate a claimer passes before each claim: the services it may claim for right now
#: (empty: none; the claim loop then returns without claiming).
MayClaim = Callable[[], Awaitable[Sequence[str]]]
#: Per service, the requirement classes a GPU may claim from (see :mod:`fleetq.classes`);
#: called with the services the gate let through and the queue's class table.
Scopes = Callable[[Sequence[str], ClassTable], Mapping[str, ServiceScope]]

#: How many times one claim round reloads changed class sets before it waits instead.
MAX_CLASS_RELOADS = 3


class WorkerQueue:
    """What one supervisor needs from the queue; one instance serves every puller."""

    def __init__(self, settings: Settings, redis: aioredis.Redis | None = None) -> None:
        self.settings = settings
        #: The command connection's store. Supervisors use the methods below; tests and tools
        #: may use it for plain commands.
        self.store = AsyncStore(settings, redis)
        #: Where this supervisor puts job outputs (``FLEETQ_OUTPUT_STORE``).
        self.outputs = open_writer(settings)
        self.protocol = self.store.protocol
        self.keys = self.store.keys
        # The blocking pop gets its own connection; with a given client (fakeredis) it shares
        # it, as there is no server to open another connection to.
        self._blocking: list[aioredis.Redis] = []
        if redis is None:
            waiter_client = connect_async(settings)
            self._blocking = [waiter_client]
        else:
            waiter_client = redis
        self._waiter = WakeupWaiter(
            settings, self.keys, waiter_client, self._rewake_one, self._set_signal
        )
        self._watcher = StreamWatcher(self._read_streams)
        # Commands share one connection: claims, renews and finishes are short, and a machine
        # never sends many at once. WAIT (wait_replicas) holds a connection until replicas
        # confirm, so then a second one keeps renewals flowing.
        self._slots = asyncio.Semaphore(2 if settings.wait_replicas else 1)
        #: The requirement classes of the services claimed for, shared by every GPU here.
        self.classes = ClassTable()

    @property
    def wakeups(self) -> WakeupWaiter:
        """The shared waiter of this queue's claimers (idle count, wake-ups handed out)."""
        return self._waiter

    @property
    def watcher(self) -> StreamWatcher:
        """The shared stream watcher (operator commands, running jobs' streams)."""
        return self._watcher

    async def aclose(self) -> None:
        await self._waiter.aclose()
        await self._watcher.aclose()
        for client in self._blocking:
            await client.aclose()
        await self.store.aclose()
        await self.outputs.close()

    async def _set_signal(self, key: str, member: str) -> None:
        await self._command("zadd", key, {member: 0})

    async def _read_streams(self, streams: dict[str, str]) -> Any:
        return await self._command("xread", streams)

    def _on_signal(self, kind: str | None) -> None:
        if kind == SIGNAL_GATE:
            self._waiter.recheck()
        else:  # news on a followed stream, or the waiter lost Redis: read them all again
            self._watcher.poll()

    def _follow(self, host: str, key: str, last_id: str) -> Subscription:
        """Subscribe to a stream of ``host``, whose signal says when it has news."""
        self.listen_for_signals(host)
        return self._watcher.subscribe(key, last_id)

    def listen_for_signals(self, host: str) -> None:
        """Block on the signal of ``host`` from now on (a supervisor calls this at start, so
        its first wait for work already covers it; following a stream of ``host`` does it
        too)."""
        self._waiter.listen(self.keys.signal(host), self._on_signal)

    async def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` in a command slot. The slot is free again once its Redis calls have
        ended, not when the caller stops waiting: a caller cancelled mid-call (a heartbeat
        stopped at the end of its job) leaves the call holding its connection a moment longer,
        and the next command would open another one meanwhile."""
        await self._slots.acquire()
        with tracking_calls() as calls:
            try:
                return await call()
            finally:
                when_ended(calls, self._slots.release)

    async def _command(self, name: str, *args: Any) -> Any:
        return await self._run(lambda: self.store.command(name, *args))

    # -- claiming -------------------------------------------------------------------------

    async def try_claim(
        self,
        services: Sequence[str],
        host: str,
        gpu: int,
        scopes: Mapping[str, ServiceScope] | None = None,
        woken: str = "",
    ) -> ClaimOutcome:
        """One claim attempt, without blocking. ``scopes``: the requirement classes this GPU
        may run, per service (none: every class); ``woken``: the wake channel whose wake-up
        this claim uses, if any."""
        self.listen_for_signals(host)  # a cancel of the job it claims signals this host
        token = secrets.token_hex(16)
        call = self.protocol.claim(services, host, gpu, token, scopes=scopes, woken=woken)
        return await self._run(lambda: self.store.run(call))

    async def refresh_classes(self, services: Sequence[str], force: bool = False) -> bool:
        """Reload the class sets of ``services`` whose version moved (all with ``force``);
        True when one changed, and then every idle claimer here waits on the markers of the
        classes of now. One MGET of the versions when nothing moved. Supervisors call it
        periodically: a claim only learns of a new class when it is woken."""
        if not services:
            return False
        k = self.keys
        versions = await self._command("mget", [k.class_version(s) for s in services])
        changed = False
        for service, raw in zip(services, versions, strict=True):
            version = text(raw) or "0"
            if not force and version == self.classes.version(service):
                continue
            changed |= await self._load_classes(service)
        if changed:  # idle claimers here wait on the markers of the old classes
            self._waiter.rescope()
        return changed

    async def _load_classes(self, service: str) -> bool:
        k = self.keys
        # The version first: classes added after it are read too, under the older version,
        # so the next claim asks for one more read; never the other way round (a class
        # missing under a version that claims to have it).
        version = await self._command("get", k.class_version(service))
        raw = await self._command("hgetall", k.classes(service))
        table = {text(cid): text(canonical) for cid, canonical in raw.items()}
        return self.classes.update(service, text(version) or "0", table)

    async def claim(
        self,
        services: Sequence[str],
        host: str,
        gpu: int,
        timeout_s: float,
        blocking: object = None,
        *,
        may_claim: MayClaim | None = None,
        on_empty: Callable[[ClaimOutcome], None] | None = None,
        stop: asyncio.Event | None = None,
        scopes: Scopes | None = None,
    ) -> ClaimOutcome:
        """Claim the best job, waiting up to ``timeout_s`` for one to arrive.

        This is the claim loop of every puller. Each round passes the gate (``may_claim``:
        the services this GPU may claim for now; all of ``services`` without one), claims once,
        and when nothing was claimable waits for a wake-up from the queue's shared waiter (a
        submit wakes one idle claimer of its service within milliseconds; nothing polls).
        ``on_empty`` sees each empty outcome before the wait; ``stop`` ends the wait early.
        ``scopes`` gives the requirement classes the GPU may run per service (default: every
        class); the claimer waits on the wake-up markers of those classes, and reloads the
        class sets when the claim says they changed.

        Returns the outcome with the job; or without one when the time runs out, when the host
        or GPU is drained (``drained``), when the gate closed, or when ``stop`` is set. A
        wake-up this claimer may not use (gate closed, drained, stopping, or for a service the
        gate left out) is passed on to another claimer, never dropped. ``blocking`` is
        accepted for older callers and ignored: the shared waiter has its own connection.
        """
        deadline = time.monotonic() + timeout_s
        wakeup = None
        reloads = 0
        try:
            while True:
                allowed = list(services) if may_claim is None else list(await may_claim())
                scoped = (scopes or every_class)(allowed, self.classes)
                channels = _Channels(allowed, scopes or every_class, self.classes)
                if wakeup is not None and wakeup.service not in channels():
                    await self._waiter.pass_on(wakeup)
                    wakeup = None
                if not allowed:
                    return ClaimOutcome(None)
                woken = "" if wakeup is None else wakeup.service
                outcome = await self.try_claim(allowed, host, gpu, scoped, woken)
                if outcome.stale_classes:
                    await self.refresh_classes(outcome.stale_classes, force=True)
                    reloads += 1
                    if reloads <= MAX_CLASS_RELOADS:
                        continue  # the same round, with the classes of now
                if outcome.drained:
                    return outcome
                wakeup = None  # the claim looked at the woken service: the wake-up is used
                if outcome.job is not None:
                    return outcome
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (stop is not None and stop.is_set()):
                    return outcome
                if on_empty is not None:
                    on_empty(outcome)
                wait_s = remaining
                retry_due = outcome.next_ready_in_ms is not None
                if outcome.next_ready_in_ms is not None:
                    wait_s = min(wait_s, outcome.next_ready_in_ms / 1000 + 0.001)
                reloads = 0
                wakeup = await self._waiter.wait(channels, wait_s, stop)
                if stop is not None and stop.is_set():
                    return outcome  # no claim once stopping (a wake-up is passed on below)
                if wakeup is None and not retry_due and time.monotonic() >= deadline:
                    return outcome  # nothing arrived: no point in another claim round trip
        finally:
            if wakeup is not None:  # not used: drained, gate closed, stopping, or an error
                self._waiter.pass_on_soon(wakeup)

    async def _rewake_one(self, channel: str) -> None:
        await self.rewake([channel])

    async def rewake(self, channels: Sequence[str]) -> None:
        """Put back the wake-up markers of ``channels`` (services, or ``service:class``; a
        wake-up nobody here may use goes back to the fleet)."""
        for channel in channels:
            await self._command("zadd", self.keys.marker(channel), {"0": 0})

    # -- running a job --------------------------------------------------------------------

    async def renew(
        self, job: ClaimedJob, progress: float | None = None, progress_text: str = ""
    ) -> bool:
        """Extend the lease (and record progress); True when a cancel was requested."""
        call = self.protocol.renew(job.id, job.token, progress, progress_text)
        return await self._run(lambda: self.store.run(call))

    async def set_preview(self, job: ClaimedJob, data: bytes, content_type: str) -> PreviewWrite:
        """Keep ``data`` as the job's latest live preview (short TTL, never an output) and
        tell its waiters; an image over ``preview_max_bytes`` is refused (``stored`` false).
        Raises :class:`~fleetq.errors.StaleLease` once the job no longer runs here."""
        call = self.protocol.set_preview(job.id, job.token, data, content_type)
        return await self._run(lambda: self.store.run(call))

    async def inputs(self, job: ClaimedJob) -> dict[str, bytes]:
        """The input files of a claimed job by name ({} for a job without any).

        Raises :class:`~fleetq.errors.InputsMissing` when the job lists files Redis no longer
        holds."""
        listed = parse_manifest(text(await self._command("hget", self.keys.job(job.id), "inputs")))
        if not listed:
            return {}
        stored = await self._command("hgetall", self.keys.inputs(job.id))
        files = {text(name): bytes(data) for name, data in stored.items()}
        missing = [entry["name"] for entry in listed if entry["name"] not in files]
        if missing:
            raise InputsMissing(
                f"input file(s) {', '.join(map(repr, missing))} of job {job.id} are missing "
                "from Redis (evicted? fleetq needs maxmemory-policy noeviction)"
            )
        return files

    async def store_outputs(self, job: ClaimedJob, outputs: Sequence[Output]) -> StoredOutputs:
        """Put a claim's outputs into the output store (Redis is not written yet); raises
        :class:`~fleetq.errors.OutputStoreError` when the store fails."""
        return await self.outputs.store(job.id, job.claims, outputs)

    async def complete(self, job: ClaimedJob, outputs: Sequence[Output] | StoredOutputs) -> None:
        """Finish ``job`` with its outputs (stored first unless already ``StoredOutputs``)."""
        if not isinstance(outputs, StoredOutputs):
            outputs = await self.store_outputs(job, outputs)
        call = self.protocol.complete(job.id, job.token, outputs.files, outputs.inline)
        await self._run(lambda: self.store.run(call))

    async def fail(self, job: ClaimedJob, kind: FaultKind, error: JobError) -> str:
        """Record a failed attempt; returns failed, retrying, requeued or cancelled."""
        call = self.protocol.fail(job.id, job.token, kind, error, job.attempts)
        return await self._run(lambda: self.store.run(call))

    async def ack_cancel(self, job: ClaimedJob) -> None:
        call = self.protocol.ack_cancel(job.id, job.token)
        await self._run(lambda: self.store.run(call))

    async def wait_for_cancel(self, job: ClaimedJob) -> None:
        """Return once a cancel of ``job`` is requested (it arrives on the job's own stream,
        read by the shared stream watcher when the host's signal says so, within milliseconds).
        Rides out Redis outages."""
        while True:
            try:
                last_id = await self._run(lambda: self.store.last_job_event_id(job.id))
                break
            except RedisUnavailable:
                await asyncio.sleep(1.0)  # reconnect backoff
        # The claim made this queue listen to the signal of the host it claimed for.
        with self._watcher.subscribe(self.keys.job_events(job.id), last_id) as events:
            while True:
                _, fields = await events.get()
                if fields.get("type") == "cancel_requested":
                    return

    async def job_events(self, job_id: str, last_id: str, block_ms: int) -> list[StreamEntry]:
        """Block on a job's own stream (one read, for tests and tools)."""
        return await self.store.read_job_events(job_id, last_id, block_ms)

    # -- upkeep ---------------------------------------------------------------------------

    async def reap(self, owner: str) -> ReapOutcome:
        call = self.protocol.reap(owner)
        return await self._run(lambda: self.store.run(call))

    async def stream_id_now(self) -> str:
        """A stream id for "now" on the Redis clock (also proves Redis is reachable)."""
        seconds, micros = await self._command("time")
        return f"{int(seconds) * 1000 + int(micros) // 1000}-0"

    async def control_commands(self, host: str, since_id: str) -> AsyncIterator[StreamEntry]:
        """The operator commands sent to ``host`` after ``since_id``, as they arrive (read by
        the shared stream watcher when the host's signal says so; rides out Redis outages)."""
        with self._follow(host, self.keys.control(host), since_id) as commands:
            while True:
                yield await commands.get()

    async def publish_host(
        self,
        host: str,
        record: HostRecord,
        gpus: Sequence[GpuRecord],
        ttl_ms: int = HOST_TTL_MS,
    ) -> None:
        """Publish one supervisor's host record and GPU records, both expiring after ttl_ms."""
        host_json, gpus_json = record.to_json(), [g.to_json() for g in gpus]
        await self._run(lambda: self.store.publish_host(host, host_json, gpus_json, ttl_ms))

    async def publish_capabilities(self, documents: Mapping[str, str], ttl_ms: int) -> None:
        """Keep the capabilities documents of this machine's GPUs (digest -> JSON) published:
        each is written once and its expiry pushed back on every call, so an unchanged one
        costs a PEXPIRE per period, not its size."""
        k = self.keys
        for digest, body in documents.items():
            key = k.capabilities(digest)
            if not await self._command("pexpire", key, ttl_ms):
                await self._run(partial(self.store.command, "set", key, body, px=ttl_ms))

    async def withdraw_host(self, host: str) -> None:
        """Remove a supervisor's records (at a clean exit, so it shows offline at once)."""
        keys = self.keys
        await self._command("delete", keys.host(host), keys.gpus(host))

    async def gate(self, host: str, gpu: int) -> tuple[bool, set[str]]:
        """Is this GPU (or its host) drained, and which services are paused?"""
        return await self.is_drained(host, gpu), await self.paused_services()

    async def is_drained(self, host: str, gpu: int) -> bool:
        members = await self._command("smismember", self.keys.drained, [host, f"{host}:{gpu}"])
        return any(bool(m) for m in members)

    async def paused_services(self) -> set[str]:
        members = await self._command("smembers", self.keys.paused)
        return {m.decode() for m in members}


class _Channels:
    """The wake channels of a claimer: each service's, and those of the requirement classes
    its scope serves now (recomputed when a scope changes: new classes, new capabilities)."""

    def __init__(self, services: Sequence[str], scopes: Scopes, classes: ClassTable) -> None:
        self._services, self._scopes, self._classes = list(services), scopes, classes
        self._seen: list[ServiceScope | None] = []
        self._channels: frozenset[str] = frozenset()

    def __call__(self) -> frozenset[str]:
        scoped = self._scopes(self._services, self._classes)
        current = [scoped.get(service) for service in self._services]
        if len(current) != len(self._seen) or any(
            a is not b for a, b in zip(current, self._seen, strict=True)
        ):
            self._seen = current
            channels: list[str] = []
            for service, scope in zip(self._services, current, strict=True):
                channels += [service] if scope is None else scope.channels(service)
            self._channels = frozenset(channels)
        return self._channels


def every_class(services: Sequence[str], classes: ClassTable) -> dict[str, ServiceScope]:
    """The scope of a claimer that can run any job (nothing known of its capabilities)."""
    return {service: classes.every_class(service) for service in services}
