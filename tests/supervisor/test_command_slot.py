"""A supervisor's command connection stays one connection when a caller is cancelled in the
middle of a command (a heartbeat stopped at the end of its job): the next command waits until
the abandoned call has ended and given the connection back, instead of opening another one."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from fleetq import Settings
from fleetq.demo.embedded import RedisServer, redis_server_binary
from fleetq.store import cancel_safe
from fleetq.worker import WorkerQueue

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="needs redis-server")


async def _unnamed_connections(raw: aioredis.Redis) -> int:
    """Connections without a name: the queue's (the test names its own)."""
    return sum(1 for c in await raw.client_list() if not c.get("name"))


async def test_a_cancelled_command_holds_its_slot_until_its_call_ends() -> None:
    with RedisServer() as server:
        queue = WorkerQueue(
            Settings(redis_url=server.url, socket_timeout_s=5.0, block_timeout_s=1.0)
        )
        raw = aioredis.Redis.from_url(server.url, client_name="test")
        try:
            await queue.stream_id_now()  # the command connection is open
            pool = queue.store.redis.connection_pool
            holding, release = asyncio.Event(), asyncio.Event()

            async def slow_to_end() -> None:
                # A redis-py call that goes on after its cancellation (as one reading a reply
                # can): it keeps the pool's connection until ``release``.
                connection = await pool.get_connection()
                holding.set()
                try:
                    while not release.is_set():
                        try:
                            await release.wait()
                        except asyncio.CancelledError:
                            continue
                finally:
                    await pool.release(connection)

            # A caller waiting in the command slot, and the next command queued behind it.
            first = asyncio.create_task(queue._run(lambda: cancel_safe(slow_to_end())))
            await holding.wait()
            second = asyncio.create_task(queue.stream_id_now())
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first  # the caller hears of its cancellation at once ...
            release.set()  # ... and its call ends later
            assert (await second).endswith("-0")
            # The second command waited for the connection instead of opening another one.
            assert await _unnamed_connections(raw) == 1
        finally:
            await raw.aclose()
            await queue.aclose()
