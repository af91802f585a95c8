"""The shared stream watcher of a supervisor, through the worker API, against a real Redis: a
job that starts while the watcher is blocked is watched at once, and the watcher reconnects
after a Redis restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fleetq import AsyncClient, Client, Settings
from fleetq.embedded import RedisServer, redis_server_binary
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
    # The watcher blocks on the operator stream before the job starts.
    control = asyncio.create_task(first(slow_queue.control_commands("h", "0-0")))
    await eventually(lambda: slow_queue.keys.control("h") in slow_queue.watcher.reading)
    job = await aclient.submit(WORKFLOW, service=SERVICE)
    claimed = (await slow_queue.try_claim([SERVICE], "h", 0)).job
    assert claimed is not None
    watching = asyncio.create_task(slow_queue.wait_for_cancel(claimed))
    stream = slow_queue.keys.job_events(job.id)
    await eventually(lambda: stream in slow_queue.watcher.reading)  # read at once, not in 30 s
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
            await eventually(lambda: queue.keys.control("h") in queue.watcher.reading)
            server.restart(crash=True)
            with Client(settings) as client:
                client.send_control("h", {"type": "clear-health", "gpu": 0})
            _, fields = await asyncio.wait_for(received, DEADLINE_S)
            assert "clear-health" in fields["command"]
        finally:
            await queue.aclose()
