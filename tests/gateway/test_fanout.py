"""The shared stream reader on its own, over the test Redis: order, gaps, slow subscribers,
new keys while it blocks, and shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from fleetq import Settings
from fleetq.gateway.fanout import StreamClosed, StreamFanout, StreamLagged, TooManyStreams
from fleetq.store import AsyncStore


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[tuple[AsyncStore, AsyncStore]]:
    reader, requests = AsyncStore(settings), AsyncStore(settings)
    yield reader, requests
    await reader.aclose()
    await requests.aclose()


async def started(fanout: StreamFanout) -> asyncio.Task[None]:
    return asyncio.create_task(fanout.run())


async def stopped(fanout: StreamFanout, task: asyncio.Task[None]) -> None:
    fanout.stop()
    await asyncio.wait_for(task, 10)


async def add(redis: aioredis.Redis, key: str, n: int) -> list[str]:
    return [(await redis.xadd(key, {"n": str(i)})).decode() for i in range(n)]


async def take(sub: object, count: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        batch = await sub.next_batch(5.0)  # type: ignore[attr-defined]
        assert batch, "no entries within 5 s"
        ids += [entry_id for entry_id, _ in batch]
    return ids


async def test_each_subscriber_gets_its_stream_in_order_from_its_point(
    stores: tuple[AsyncStore, AsyncStore], raw_redis: aioredis.Redis, namespace: str
) -> None:
    reader, requests = stores
    fanout = StreamFanout(reader, requests, block_ms=1000, max_subscribers=10)
    task = await started(fanout)
    a, b = f"{namespace}:a", f"{namespace}:b"
    early = await add(raw_redis, a, 3)
    with fanout.subscribe(a, "0-0") as from_start, fanout.subscribe(b, "0-0") as other:
        assert await take(from_start, 3) == early
        more = await add(raw_redis, a, 2)
        assert await take(from_start, 2) == more
        # Joins behind the reader: the gap comes from XRANGE, the rest from the reader.
        with fanout.subscribe(a, early[0]) as late:
            last = await add(raw_redis, a, 1)
            assert await take(late, 5) == [*early[1:], *more, *last]
        assert await take(from_start, 1) == last
        assert await take(other, 0) == []
        b_ids = await add(raw_redis, b, 2)
        assert await take(other, 2) == b_ids
    assert fanout.subscribers == 0
    await stopped(fanout, task)


async def test_a_new_key_is_followed_at_once_while_the_reader_blocks(
    stores: tuple[AsyncStore, AsyncStore], raw_redis: aioredis.Redis, namespace: str
) -> None:
    reader, requests = stores
    # A block far longer than the wait below: only CLIENT UNBLOCK can bring the new key in.
    fanout = StreamFanout(reader, requests, block_ms=4000, max_subscribers=10)
    task = await started(fanout)
    with fanout.subscribe(f"{namespace}:idle", "0-0"):
        # The reader blocks on the first key: Redis counts it as a blocked client.
        while int((await raw_redis.info("clients"))["blocked_clients"]) < 1:
            await asyncio.sleep(0.01)
        with fanout.subscribe(f"{namespace}:new", "0-0") as sub:
            ids = await add(raw_redis, f"{namespace}:new", 1)
            batch = await sub.next_batch(2.0)
            assert [entry_id for entry_id, _ in batch] == ids
    await stopped(fanout, task)


async def test_a_slow_subscriber_is_cut_off_and_others_go_on(
    stores: tuple[AsyncStore, AsyncStore], raw_redis: aioredis.Redis, namespace: str
) -> None:
    reader, requests = stores
    fanout = StreamFanout(reader, requests, block_ms=1000, max_subscribers=10, queue_limit=20)
    task = await started(fanout)
    key = f"{namespace}:busy"
    with fanout.subscribe(key, "0-0") as slow, fanout.subscribe(key, "0-0") as fast:
        cut_off: list[bool] = []
        slow.on_lagged = lambda: cut_off.append(True)  # its owner may be stuck writing
        for _ in range(3):  # the fast one keeps up; the slow one never reads
            ids = await add(raw_redis, key, 8)
            assert await take(fast, 8) == ids
        assert cut_off == [True]
        with pytest.raises(StreamLagged, match="Last-Event-ID"):
            await take(slow, 24)
    await stopped(fanout, task)


async def test_the_cap_and_shutdown(stores: tuple[AsyncStore, AsyncStore], namespace: str) -> None:
    reader, requests = stores
    fanout = StreamFanout(reader, requests, block_ms=1000, max_subscribers=1)
    task = await started(fanout)
    with fanout.subscribe(f"{namespace}:x", "0-0") as sub:
        with pytest.raises(TooManyStreams):
            fanout.subscribe(f"{namespace}:y", "0-0")
        internal = fanout.subscribe(f"{namespace}:y", "0-0", counted=False)  # takes no slot
        waiting = asyncio.create_task(sub.next_batch(30.0))
        fanout.stop()
        with pytest.raises(StreamClosed):
            await asyncio.wait_for(waiting, 5)
        internal.close()
    await asyncio.wait_for(task, 10)
    with pytest.raises(StreamClosed):
        fanout.subscribe(f"{namespace}:x", "0-0")
