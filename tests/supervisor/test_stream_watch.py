"""The shared stream watcher of a supervisor, through the worker API, against a real Redis: the
streams are read when the host's signal (popped by the one blocking connection) says so; a job
that starts while that connection is blocked sees its cancel at once, and after a Redis restart
a command or a cancel written before the supervisor reconnected is still delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fleetq import AsyncClient, Client, Settings
from fleetq.demo.embedded import RedisServer, redis_server_binary
from fleetq.worker import StreamEntry, WorkerQueue

from .conftest import eventually  # type: ignore[import-not-found]

SERVICE = "comfyui"
WORKFLOW = {"1": {"class_type": "KSampler", "inputs": {}}}
#: The watcher's block timeout: a cancel left for the next XREAD would miss the deadline.
LONG_S = 30.0
DEADLINE_S = 10.0


@pytest.fixture
async def slow_queue(settings: Settings) -> AsyncIterator[WorkerQueue]:
    queue = WorkerQueue(settings.with_overrides(block_timeout_s=LONG_S, socket_timeout_s=40.0))
    yield queue
    await queue.aclose()


async def first(commands: AsyncIterator[StreamEntry]) -> StreamEntry:
    return await commands.__anext__()


async def test_a_job_started_while_the_watcher_blocks_sees_its_cancel_at_once(
    slow_queue: WorkerQueue, aclient: AsyncClient
) -> None:
    # The machine blocks on its signal (following its operator stream) before the job starts.
    control = asyncio.create_task(first(slow_queue.control_commands("h", "0-0")))
    await eventually(lambda: slow_queue.keys.signal("h") in slow_queue.wakeups.covering)
    job = await aclient.submit(WORKFLOW, service=SERVICE)
    claimed = (await slow_queue.try_claim([SERVICE], "h", 0)).job
    assert claimed is not None
    watching = asyncio.create_task(slow_queue.wait_for_cancel(claimed))
    stream = slow_queue.keys.job_events(job.id)
    await eventually(lambda: stream in slow_queue.watcher.following)  # read at once
    assert not watching.done()
    assert await aclient.cancel(job.id) == "cancelling"
    await asyncio.wait_for(watching, DEADLINE_S)
    control.cancel()


@pytest.mark.skipif(redis_server_binary() is None, reason="needs redis-server")
async def test_the_stream_watcher_reconnects_after_a_redis_restart() -> None:
    with RedisServer() as server:
        settings = Settings(redis_url=server.url, socket_timeout_s=5.0, block_timeout_s=1.0)
        queue = WorkerQueue(settings)
        try:
            since = await queue.stream_id_now()
            received = asyncio.create_task(first(queue.control_commands("h", since)))
            await eventually(lambda: queue.keys.signal("h") in queue.wakeups.covering)
            server.restart(crash=True)
            with Client(settings) as client:
                client.send_control("h", {"type": "clear-health", "gpu": 0})
            _, fields = await asyncio.wait_for(received, DEADLINE_S)
            assert "clear-health" in fields["command"]
        finally:
            await queue.aclose()


@pytest.mark.skipif(redis_server_binary() is None, reason="needs redis-server")
async def test_a_cancel_written_before_the_supervisor_reconnected_is_delivered() -> None:
    with RedisServer(appendonly=True, appendfsync="always") as server:
        settings = Settings(redis_url=server.url, socket_timeout_s=5.0, block_timeout_s=1.0)
        queue = WorkerQueue(settings)
        try:
            async with AsyncClient(settings) as client:
                job = await client.submit(WORKFLOW, service=SERVICE)
            claimed = (await queue.try_claim([SERVICE], "h", 0)).job
            assert claimed is not None
            watching = asyncio.create_task(queue.wait_for_cancel(claimed))
            stream = queue.keys.job_events(job.id)
            await eventually(lambda: stream in queue.watcher.following)
            server.kill()
            # Down: the blocking pop fails and backs off; the cancel goes in as soon as Redis
            # is up again, before the supervisor's next attempt.
            server.start()
            async with AsyncClient(settings) as client:
                assert await client.cancel(job.id) == "cancelling"
                await asyncio.wait_for(watching, DEADLINE_S)
                await queue.ack_cancel(claimed)
                assert (await client.status(job.id)).state.value == "cancelled"
        finally:
            await queue.aclose()
