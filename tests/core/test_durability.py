"""A redis-server restart with AOF loses no acknowledged job; Redis down is a clear error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fleetq import Client, RedisUnavailable, Settings
from fleetq.demo.embedded import RedisServer, redis_server_binary
from fleetq.worker import WorkerQueue

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="needs redis-server")


@pytest.fixture
def aof_server() -> Iterator[RedisServer]:
    with RedisServer(appendonly=True, appendfsync="always") as server:
        yield server


async def test_restart_with_aof_loses_no_acknowledged_job(
    aof_server: RedisServer, graph: dict[str, Any]
) -> None:
    settings = Settings(redis_url=aof_server.url, namespace="aof", block_timeout_s=1)
    with Client(settings) as client:
        ids = [client.submit(graph, priority=i % 3).id for i in range(200)]
        worker = WorkerQueue(settings)
        running = (await worker.try_claim(["comfyui"], "h", 0)).job
        assert running is not None
        await worker.aclose()

        aof_server.restart(crash=True)  # SIGKILL: no shutdown save

        stats = client.stats().service("comfyui")
        assert stats is not None and (stats.queued, stats.running) == (199, 1)
        states = {client.status(i).state.value for i in ids}
        assert states == {"queued", "running"}
        worker = WorkerQueue(settings)
        # The puller that held the lease reconnects and finishes its job.
        await worker.complete(running, [])
        order = []
        while (job := (await worker.try_claim(["comfyui"], "h", 1)).job) is not None:
            order.append(job.id)
        await worker.aclose()
    assert sorted([*order, running.id]) == sorted(ids)


def test_redis_down_is_one_clear_error(graph: dict[str, Any]) -> None:
    from fleetq.demo.embedded import free_port

    settings = Settings(redis_url=f"redis://:secret@127.0.0.1:{free_port()}/0")
    with Client(settings) as client, pytest.raises(RedisUnavailable) as info:
        client.submit(graph)
    message = str(info.value)
    assert message.startswith("cannot reach Redis at redis://:***@127.0.0.1:")
    assert "secret" not in message


async def test_wait_rides_out_a_redis_restart(
    aof_server: RedisServer, graph: dict[str, Any]
) -> None:
    import asyncio

    from fleetq import AsyncClient

    settings = Settings(redis_url=aof_server.url, namespace="ride", block_timeout_s=1,
                        socket_timeout_s=2)  # fmt: skip
    async with AsyncClient(settings) as client:
        job = await client.submit(graph)
        waiting = asyncio.create_task(job.wait(timeout_s=60))
        await asyncio.to_thread(aof_server.restart, True)  # the waiter meets Redis down
        worker = WorkerQueue(settings)
        claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
        assert claimed is not None
        await worker.complete(claimed, [])
        await worker.aclose()
        result = await asyncio.wait_for(waiting, 30)
        assert result.job_id == job.id
