"""Fixtures for the scheduling tests: fake backends on free loopback ports, worker queues
closed after the test, and a plain Redis client for looking at the keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from fleetq import Settings
from fleetq.worker import WorkerQueue
from tests.fixtures import a1111_factory, comfy_factory, graph, worker  # noqa: F401 (fixtures)


@pytest.fixture
async def queues(settings: Settings) -> AsyncIterator[list[WorkerQueue]]:
    made: list[WorkerQueue] = []
    yield made
    for queue in made:
        await queue.aclose()


@pytest.fixture
async def raw(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    await client.aclose()
