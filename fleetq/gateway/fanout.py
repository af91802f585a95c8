"""One reader of Redis streams, shared by every event stream a process serves.

:class:`StreamFanout` runs a single task over a Redis connection of its own (never one of the
request pool): one ``XREAD BLOCK`` over every stream that has a subscriber at the moment (the
fleet event stream, the streams of followed jobs), handing each entry to the subscribers of
its stream. So a process holds one Redis connection for streams, whatever the number of
viewers, and a thousand open streams cannot take a connection from an ordinary request.

A subscriber names a stream key and the entry id it has seen last (``after``); it then gets
every later entry, in order, exactly once:

- the first subscriber of a key makes the reader follow that key from ``after``;
- a later subscriber of a key the reader is already past reads the gap (``after`` up to the
  reader's position) itself, with short ``XRANGE`` pages through the client it was given
  (the request pool), then goes on with the reader's entries;
- entries the subscriber has already seen are dropped, so positions may overlap safely.

When a key is added, the blocking read is cut short with ``CLIENT UNBLOCK`` so the new key is
followed at once; where that command is not allowed the new key waits for the current block
to time out (at most ``block_ms``).

A subscriber whose queue overflows (a client too slow to take the events) is ended with
:class:`StreamLagged`; a Redis failure ends every subscription with the
:class:`~fleetq.errors.RedisUnavailable` error. Either way the client can resume from the last
id it received. Nothing here knows HTTP: the dashboard can follow streams the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import redis

from fleetq.backoff import BackoffPolicy
from fleetq.errors import FleetqError, PermissionDenied, RedisUnavailable
from fleetq.protocol import text
from fleetq.store import AsyncStore, StreamEntry

log = logging.getLogger(__name__)

#: Entries one XREAD returns per stream, and one gap read per page.
READ_COUNT = 500
RETRY = BackoffPolicy(first_s=0.5, max_s=10.0)
RETRY_MAX_S = RETRY.max_s


class TooManyStreams(FleetqError):
    """Every stream slot of this process is taken; retry later."""


class StreamClosed(FleetqError):
    """The server is shutting down: the subscription ends without an error to report."""


class StreamLagged(FleetqError):
    """The subscriber took entries more slowly than they came, and was cut off."""


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id as a sortable pair (``"1700000000000-3"`` -> ``(1700000000000, 3)``)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def decode_entries(items: Iterable[Any]) -> list[StreamEntry]:
    return [
        (text(entry_id), {text(k): text(v) for k, v in fields.items()})
        for entry_id, fields in items
    ]


class Subscription:
    """One subscriber's view of one stream; use it as a context manager so its slot is freed.

    :meth:`next_batch` gives the next entries in order, each once; it raises the error that
    ended the subscription (:class:`StreamLagged`, :class:`~fleetq.errors.RedisUnavailable`,
    :class:`StreamClosed`) once the entries before it are handed out.
    """

    def __init__(
        self,
        fanout: StreamFanout,
        key: str,
        after: str,
        gap_to: str | None,
        limit: int,
        counted: bool = True,
    ) -> None:
        self.fanout = fanout
        self.key = key
        #: Whether it takes one of the fanout's ``max_subscribers`` slots.
        self.counted = counted
        #: The id of the last entry handed out (or the starting point).
        self.last_id = after
        self._last = id_key(after)
        self._gap_to = gap_to
        self._queue: deque[StreamEntry] = deque()
        self._limit = limit
        self._ready = asyncio.Event()
        self._error: FleetqError | None = None
        self.closed = False
        #: Called once when the subscriber is cut off for lagging: its owner may be stuck
        #: writing to a client that stopped reading, and never call :meth:`next_batch` again.
        self.on_lagged: Callable[[], None] | None = None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the slot; the reader stops following the key once nobody does."""
        if not self.closed:
            self.closed = True
            self.fanout._remove(self)

    async def next_batch(self, timeout_s: float) -> list[StreamEntry]:
        """The next entries (at least one), or ``[]`` when none came within ``timeout_s``."""
        if self._gap_to is not None:
            batch = await self._read_gap()
            if batch:
                return batch
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            if self._queue:
                batch = self._accept(list(self._queue))
                self._queue.clear()
                if batch:  # else all were seen already (the gap overlapped the reader)
                    return batch
            if self._error is not None:
                raise self._error
            self._ready.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(self._ready.wait(), max(0.0, remaining))
            except asyncio.TimeoutError:
                return []

    async def _read_gap(self) -> list[StreamEntry]:
        assert self._gap_to is not None
        store = self.fanout.gap_store
        items = await store.command(
            "xrange", self.key, "(" + self.last_id, self._gap_to, count=READ_COUNT
        )
        batch = self._accept(decode_entries(items))
        if len(items) < READ_COUNT or not batch or self.last_id == self._gap_to:
            self._gap_to = None
        return batch

    def _accept(self, entries: list[StreamEntry]) -> list[StreamEntry]:
        fresh = [e for e in entries if id_key(e[0]) > self._last]
        if fresh:
            self.last_id = fresh[-1][0]
            self._last = id_key(self.last_id)
        return fresh

    def _deliver(self, entries: list[StreamEntry]) -> None:
        if self.closed or self._error is not None:
            return
        self._queue.extend(entries)
        if len(self._queue) > self._limit:
            self._queue.clear()
            self.end(
                StreamLagged(
                    f"the client took events too slowly and was cut off after {self.last_id}; "
                    "reconnect with Last-Event-ID to resume"
                )
            )
            if self.on_lagged is not None:
                self.on_lagged()
        self._ready.set()

    def end(self, error: FleetqError) -> None:
        """End the subscription with ``error`` (raised by :meth:`next_batch` once drained)."""
        if self._error is None:
            self._error = error
        self._ready.set()


class _Followed:
    """A key the reader follows: its position and its subscribers."""

    def __init__(self, position: str) -> None:
        self.position = position
        self.subscribers: set[Subscription] = set()


class StreamFanout:
    """Follows Redis streams for every subscriber of a process over one connection.

    ``reader``: the store whose single connection the reader uses (give it its own client);
    ``gap_store``: the store subscribers read their catch-up pages through (short reads).
    ``max_subscribers`` caps the open subscriptions (:class:`TooManyStreams` beyond it);
    ``queue_limit`` is how many undelivered entries a subscriber may have before it is cut off.
    """

    def __init__(
        self,
        reader: AsyncStore,
        gap_store: AsyncStore,
        *,
        block_ms: int,
        max_subscribers: int,
        queue_limit: int = 10_000,
    ) -> None:
        self.reader = reader
        self.gap_store = gap_store
        self.block_ms = block_ms
        self.max_subscribers = max_subscribers
        self.queue_limit = queue_limit
        self._followed: dict[str, _Followed] = {}
        self._count = 0
        self._changed = asyncio.Event()
        self._stopping = False
        self._reader_client_id: int | None = None
        self._reading = False
        self._read_no = 0
        self._unblock_allowed = True

    @property
    def subscribers(self) -> int:
        """Open subscriptions that take a slot, now."""
        return self._count

    def subscribe(self, key: str, after: str, *, counted: bool = True) -> Subscription:
        """Follow ``key`` from the entry after ``after``; raises :class:`TooManyStreams` when
        every slot is taken. Registration does no I/O: the first read happens in
        :meth:`Subscription.next_batch`. ``counted=False`` is for the process's own readers
        (metrics), which take no client's slot."""
        if self._stopping:
            raise StreamClosed("the server is shutting down")
        if counted and self._count >= self.max_subscribers:
            raise TooManyStreams(
                f"this gateway already serves {self.max_subscribers} event streams "
                "(its --max-streams); retry later"
            )
        followed = self._followed.get(key)
        if followed is None:
            followed = self._followed[key] = _Followed(after)
            gap_to = None
            self._changed.set()
            self._wake_reader()
        else:
            # The reader may be past ``after``: the gap up to its position is read separately;
            # everything after the position comes from the reader.
            behind = id_key(after) < id_key(followed.position)
            gap_to = followed.position if behind else None
        sub = Subscription(self, key, after, gap_to, self.queue_limit, counted)
        followed.subscribers.add(sub)
        self._count += counted
        return sub

    def _remove(self, sub: Subscription) -> None:
        followed = self._followed.get(sub.key)
        if followed is None or sub not in followed.subscribers:
            return
        followed.subscribers.discard(sub)
        self._count -= sub.counted
        if not followed.subscribers:
            del self._followed[sub.key]

    def stop(self) -> None:
        """Make :meth:`run` return after its current read and end every subscription."""
        self._stopping = True
        self._end_all(StreamClosed("the server is shutting down"))
        self._changed.set()
        self._wake_reader()

    async def run(self) -> None:
        """Read and hand out entries until stopped; a Redis outage ends the subscriptions of
        the moment (they report it to their clients) and is retried with backoff."""
        retries = RETRY.start()
        while not self._stopping:
            try:
                await self.step()
                retries.reset()
            except RedisUnavailable as e:
                retry_s = retries.next_s()
                log.warning("stream reader: %s; retrying in %.1f s", e, retry_s)
                self._end_all(e)
                self._reader_client_id = None
                await asyncio.sleep(retry_s)
            except Exception:
                retry_s = retries.next_s()
                log.exception("stream reader failed; retrying in %.1f s", retry_s)
                self._end_all(RedisUnavailable("the event reader failed; reconnect to resume"))
                await asyncio.sleep(retry_s)
        self._end_all(StreamClosed("the server is shutting down"))

    async def step(self) -> None:
        """One blocking read over the followed keys (or a wait for the first subscriber)."""
        if not self._followed:
            self._changed.clear()
            await self._changed.wait()
            return
        if self._reader_client_id is None and self._unblock_allowed:
            await self._learn_client_id()
        self._changed.clear()
        followed = dict(self._followed)
        streams = {key: f.position for key, f in followed.items()}
        self._reading = True
        self._read_no += 1
        try:
            reply = await self.reader.command(
                "xread", streams, block=self.block_ms, count=READ_COUNT
            )
        finally:
            self._reading = False
        for raw_key, items in _stream_items(reply):
            key = text(raw_key)
            entries = decode_entries(items)
            current = self._followed.get(key)
            # A key dropped (and maybe added again) during the read: its entries are stale.
            if not entries or current is not followed.get(key) or current is None:
                continue
            current.position = entries[-1][0]
            for sub in list(current.subscribers):
                sub._deliver(entries)

    async def _learn_client_id(self) -> None:
        try:
            self._reader_client_id = int(await self.reader.command("client_id"))
        except (PermissionDenied, redis.exceptions.ResponseError):
            self._unblock_allowed = False  # ACL: new keys wait for the block to time out

    def _wake_reader(self) -> None:
        if self._reading and self._reader_client_id is not None and self._unblock_allowed:
            task = asyncio.ensure_future(self._unblock(self._reader_client_id, self._read_no))
            task.add_done_callback(_ignore_result)

    async def _unblock(self, client_id: int, read_no: int) -> None:
        try:
            for _attempt in range(5):
                if not self._reading or self._read_no != read_no:
                    return  # that read is over; the next one includes the new key
                if await self.gap_store.command("client_unblock", client_id):
                    return
                # The XREAD may not have reached Redis yet: try again in a moment.
                await asyncio.sleep(0.02)
            self._reader_client_id = None  # a stale id after a reconnect: learn it again
        except (PermissionDenied, redis.exceptions.ResponseError):
            # An ACL without CLIENT UNBLOCK (fleetq's roles drop @admin): new keys wait for
            # the current block to time out instead.
            self._unblock_allowed = False
        except RedisUnavailable:
            pass  # the reader will see the outage itself

    def _end_all(self, error: FleetqError) -> None:
        for followed in list(self._followed.values()):
            for sub in list(followed.subscribers):
                sub.end(error)


def _stream_items(reply: Any) -> list[tuple[Any, Any]]:
    """XREAD's reply as ``(key, entries)`` pairs (RESP2 gives a list, RESP3 a map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in reply.items()]
    return [(k, items) for k, items in reply]


def _ignore_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
