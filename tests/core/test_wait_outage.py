"""``wait(timeout_s=...)`` keeps its deadline while Redis is away: it raises ``TimeoutError``
when the deadline passes, not ``RedisUnavailable`` after the outage tolerance (30 s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fleetq import AsyncClient, Client, Settings
from fleetq.demo.embedded import RedisServer


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as s:
        yield s


def test_wait_keeps_its_deadline_during_an_outage(
    server: RedisServer, graph: dict[str, Any]
) -> None:
    settings = Settings(redis_url=server.url, socket_timeout_s=2.0, block_timeout_s=1.0)
    with Client(settings) as client:
        job = client.submit(graph)
        server.stop()  # Redis is away for the whole wait
        with pytest.raises(TimeoutError, match=job.id):
            job.wait(timeout_s=1)


async def test_async_wait_keeps_its_deadline_during_an_outage(
    server: RedisServer, graph: dict[str, Any]
) -> None:
    settings = Settings(redis_url=server.url, socket_timeout_s=2.0, block_timeout_s=1.0)
    async with AsyncClient(settings) as client:
        job = await client.submit(graph)
        server.stop()
        with pytest.raises(TimeoutError, match=job.id):
            await job.wait(timeout_s=1)
