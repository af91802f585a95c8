"""One stream watcher per process: a single blocking XREAD over every stream its tasks follow.

A supervisor follows its operator command stream and, for each running job, that job's own
stream (a cancel request arrives there within milliseconds). Instead of one blocked connection
per running job, one :class:`StreamWatcher` reads them all in one XREAD and delivers each entry
to the subscriptions of its stream. A new subscription cuts the current XREAD short (an XREAD
takes nothing from Redis, so re-reading from each stream's last id loses nothing); a dropped
one is left out of the next XREAD.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
import redis.asyncio as aioredis

from fleetq.config import Settings
from fleetq.connection import CONNECTION_ERRORS
from fleetq.protocol import text

log = logging.getLogger(__name__)

StreamEntry = tuple[str, dict[str, str]]

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
    """Follows many streams over one connection (``client`` is used for nothing else)."""

    def __init__(self, settings: Settings, client: aioredis.Redis) -> None:
        self.settings = settings
        self._client = client
        self._subs: dict[str, list[Subscription]] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._read: asyncio.Future[Any] | None = None
        self._reading: frozenset[str] = frozenset()

    @property
    def reading(self) -> frozenset[str]:
        """The streams of the XREAD in flight (empty between reads)."""
        return self._reading

    def subscribe(self, key: str, last_id: str) -> Subscription:
        """Follow stream ``key`` from after ``last_id`` (a concrete id, not ``$``)."""
        sub = Subscription(self, key, last_id)
        self._subs.setdefault(key, []).append(sub)
        self._changed.set()
        if self._read is not None and key not in self._reading:
            self._read.cancel()  # re-read at once, with the new stream in
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="stream-watcher")
        return sub

    def _drop(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key, [])
        if sub in subs:
            subs.remove(sub)
        if not subs:
            self._subs.pop(sub.key, None)

    async def _run(self) -> None:
        delay_s = RECONNECT_FIRST_S
        down = False
        block_ms = max(10, int(self.settings.block_timeout_s * 1000))
        while True:
            self._changed.clear()
            if not self._subs:
                await self._changed.wait()
                continue
            streams: dict[Any, Any] = {
                key: min((s.last_id for s in subs), key=_id_key) for key, subs in self._subs.items()
            }
            self._reading = frozenset(streams)
            self._read = asyncio.ensure_future(self._client.xread(streams, block=block_ms))
            try:
                await asyncio.wait({self._read})
                if self._read.cancelled():
                    continue  # a new subscription: read again with it
                reply = self._read.result()
                if down:
                    log.info("stream watcher: Redis is back")
                down, delay_s = False, RECONNECT_FIRST_S
            except (*CONNECTION_ERRORS, redis.exceptions.ResponseError) as e:
                if not down:
                    log.warning("stream watcher: %s; reconnecting", e)
                down = True
                await asyncio.sleep(delay_s)  # reconnect backoff
                delay_s = min(RECONNECT_MAX_S, delay_s * 2)
                continue
            except asyncio.CancelledError:
                self._read.cancel()
                raise
            finally:
                self._reading = frozenset()
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
