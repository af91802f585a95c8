"""A background task that follows the fleet event stream and feeds the time histograms.

It starts at the end of the stream (history before the gateway started is not replayed, so a
restart never counts a job twice) and takes its entries from the process's
:class:`~fleetq.gateway.fanout.StreamFanout`, like the event streams: no Redis connection of
its own. After a Redis outage it resumes where it stopped, so no event is counted twice or lost
while the stream still holds it.
For each ``claimed`` event it observes the wait (claim time minus the job's enqueue time); for
each ``completed`` or ``failed`` event the run time (finish minus the last claim). Both times
come from one pipelined HMGET per batch of events, so the cost follows the event rate, never
the queue size. Event times are the stream entry ids (Redis server time).
"""

from __future__ import annotations

import asyncio
import logging
import time

from fleetq.backoff import BackoffPolicy
from fleetq.connection import translate_errors
from fleetq.errors import RedisUnavailable
from fleetq.gateway.fanout import StreamClosed, StreamFanout, StreamLagged, Subscription
from fleetq.metrics import JobTimings
from fleetq.protocol import text
from fleetq.store import AsyncStore, StreamEntry

log = logging.getLogger(__name__)

_FINISHED = ("completed", "failed")
RETRY = BackoffPolicy(first_s=0.5, max_s=10.0)
RETRY_MAX_S = RETRY.max_s


def entry_ms(entry_id: str) -> int:
    """The time part of a stream entry id (``<ms>-<seq>``)."""
    return int(entry_id.partition("-")[0])


def id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def last_event_id(store: AsyncStore) -> str:
    """The id of the newest fleet event, or ``0-0`` when the stream is empty."""
    last = await store.command("xrevrange", store.keys.events, count=1)
    return text(last[0][0]) if last else "0-0"


class EventFollower:
    """Follows ``{ns}:events`` for the lifetime of a gateway."""

    def __init__(
        self, store: AsyncStore, fanout: StreamFanout, timings: JobTimings, block_ms: int
    ) -> None:
        self.store = store
        self.fanout = fanout
        self.timings = timings
        self.block_ms = block_ms
        self._sub: Subscription | None = None
        #: The last entry processed; None until the first successful read of the stream's end.
        self.last_id: str | None = None
        self._advanced = asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        """Make :meth:`run` return after its current read.

        Cancelling the task is not enough on its own: redis-py can lose a cancellation that
        lands while a connection is being set up (redis/redis-py#2028), and the loop would run on.
        """
        self._stopping = True
        if self._sub is not None:
            self._sub.close()

    async def run(self) -> None:
        """Follow until stopped; a Redis outage is logged and retried with backoff."""
        retries = RETRY.start()
        while not self._stopping:
            try:
                await self.step()
                retries.reset()
            except StreamClosed:
                return
            except StreamLagged:
                log.warning("event follower fell behind; catching up from %s", self.last_id)
            except RedisUnavailable as e:
                retry_s = retries.next_s()
                log.warning("event follower: %s; retrying in %.1f s", e, retry_s)
                await asyncio.sleep(retry_s)
            except Exception:
                # A bug must not silently stop the histograms; log it and carry on.
                retry_s = retries.next_s()
                log.exception("event follower failed; retrying in %.1f s", retry_s)
                await asyncio.sleep(retry_s)

    async def step(self) -> None:
        """One wait for entries (at most a block timeout) and the observations of them."""
        if self.last_id is None:
            self.last_id = await last_event_id(self.store)
        if self._sub is None or self._sub.closed:
            self._sub = self.fanout.subscribe(self.store.keys.events, self.last_id, counted=False)
        try:
            entries = await self._sub.next_batch(self.block_ms / 1000)
        except Exception:
            # Ended by an outage or by lagging: the next step subscribes again from last_id.
            self._sub.close()
            raise
        if entries:
            await self.observe(entries)
            self.last_id = entries[-1][0]
        self._advanced.set()

    async def observe(self, entries: list[StreamEntry]) -> None:
        timed = [
            (entry_id, fields)
            for entry_id, fields in entries
            if fields.get("type") in ("claimed", *_FINISHED) and fields.get("job")
        ]
        for _entry_id, fields in entries:
            self.timings.events.labels(fields.get("type", "unknown")).inc()
        if not timed:
            return
        keys = self.store.keys
        with translate_errors(self.store.settings, "read job timings"):
            async with self.store.redis.pipeline(transaction=False) as pipe:
                for _entry_id, fields in timed:
                    pipe.hmget(keys.job(fields["job"]), "enqueued_ms", "started_ms")
                rows = await pipe.execute()
        for (entry_id, fields), (enqueued, started) in zip(timed, rows, strict=True):
            at_ms = entry_ms(entry_id)
            service = fields.get("service", "")
            kind = fields["type"]
            if kind == "claimed" and enqueued is not None:
                wait_ms = max(0, at_ms - int(float(text(enqueued))))
                self.timings.wait_seconds.labels(service).observe(wait_ms / 1000)
            elif kind in _FINISHED and started is not None:
                run_ms = max(0, at_ms - int(float(text(started))))
                self.timings.run_seconds.labels(service, kind).observe(run_ms / 1000)

    async def caught_up(self, timeout_s: float = 5.0) -> None:
        """Wait until every event in the stream now has been observed (for tests and health)."""
        target = id_key(await last_event_id(self.store))
        deadline = time.monotonic() + timeout_s
        while self.last_id is None or id_key(self.last_id) < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"event follower is behind: at {self.last_id}")
            self._advanced.clear()
            try:
                await asyncio.wait_for(self._advanced.wait(), remaining)
            except asyncio.TimeoutError:
                continue
