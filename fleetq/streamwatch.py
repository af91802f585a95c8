"""One stream watcher per process: every stream its tasks follow, read when signalled.

A supervisor follows its operator command stream and, for each running job, that job's own
stream (a cancel request arrives there within milliseconds). It holds no connection blocked on
streams: whatever writes to one of them something the supervisor must react to also sets the
supervisor's signal (``Keys.signal``) in the same script, and the supervisor's one blocking
connection (:class:`~fleetq.wakeups.WakeupWaiter`) pops it with its work markers. The
:class:`StreamWatcher` then reads every stream it follows in one XREAD without BLOCK, over the
command connection, and delivers each entry to the subscriptions of its stream.

Nothing is lost: a new subscription is read at once from its last id; a signal stays set until
popped; after a read failed (Redis unreachable) or the waiter lost Redis, the watcher reads
every stream again from its last id, until a read succeeds. Entries written without a signal
(progress, which the supervisor writes itself) are delivered with the next read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from fleetq.errors import FleetqError
from fleetq.protocol import text

log = logging.getLogger(__name__)

StreamEntry = tuple[str, dict[str, str]]
#: One XREAD without BLOCK: stream -> last id read, to the reply of redis-py's ``xread``.
ReadStreams = Callable[[dict[str, str]], Awaitable[Any]]

RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 5.0


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Subscription:
    """The entries of one stream after ``last_id``, in order, as they arrive."""

    def __init__(self, watcher: StreamWatcher, key: str, last_id: str) -> None:
        self.key = key
        self.last_id = last_id
        self._watcher = watcher
        self._entries: asyncio.Queue[StreamEntry] = asyncio.Queue()

    async def get(self) -> StreamEntry:
        """The next entry (waits for it)."""
        return await self._entries.get()

    def _deliver(self, entry_id: str, fields: dict[str, str]) -> None:
        if _id_key(entry_id) > _id_key(self.last_id):
            self.last_id = entry_id
            self._entries.put_nowait((entry_id, fields))

    def close(self) -> None:
        """Stop following the stream."""
        self._watcher._drop(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamWatcher:
    """Follows many streams, reading them all at once whenever :meth:`poll` is called.

    ``read`` runs one XREAD without BLOCK (over a connection shared with other commands).
    """

    def __init__(self, read: ReadStreams) -> None:
        self._read = read
        self._subs: dict[str, list[Subscription]] = {}
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._following: frozenset[str] = frozenset()
        #: Reads done (for tests and benchmarks).
        self.reads = 0

    @property
    def following(self) -> frozenset[str]:
        """The streams read at least once since they were subscribed to: an entry written to
        one of them from now on is delivered at the next :meth:`poll`."""
        return self._following

    def subscribe(self, key: str, last_id: str) -> Subscription:
        """Follow stream ``key`` from after ``last_id`` (a concrete id, not ``$``); it is read
        at once."""
        sub = Subscription(self, key, last_id)
        self._subs.setdefault(key, []).append(sub)
        self.poll()
        return sub

    def poll(self) -> None:
        """Read every followed stream soon (a signal said one of them has news)."""
        self._wanted.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="stream-watcher")

    def _drop(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key, [])
        if sub in subs:
            subs.remove(sub)
        if not subs:
            self._subs.pop(sub.key, None)
            self._following = self._following - {sub.key}

    async def _run(self) -> None:
        delay_s = RECONNECT_FIRST_S
        down = False
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if not self._subs:
                continue
            streams = {
                key: min((s.last_id for s in subs), key=_id_key) for key, subs in self._subs.items()
            }
            try:
                reply = await self._read(streams)
            except (FleetqError, redis.exceptions.RedisError) as e:
                if not down:
                    log.warning("stream watcher: %s; reading again", e)
                down = True
                await asyncio.sleep(delay_s)  # reconnect backoff
                delay_s = min(RECONNECT_MAX_S, delay_s * 2)
                self._wanted.set()  # every stream again, from its last id
                continue
            self.reads += 1
            if down:
                log.info("stream watcher: Redis is back")
            down, delay_s = False, RECONNECT_FIRST_S
            self._following = frozenset(k for k in streams if k in self._subs)
            for stream, items in reply or []:
                key = text(stream)
                for entry_id, fields in items:
                    decoded = {text(k): text(v) for k, v in fields.items()}
                    for sub in list(self._subs.get(key, [])):
                        sub._deliver(text(entry_id), decoded)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
