"""Fixtures for the scheduling tests: fake backends on free loopback ports, worker queues
closed after the test, and a plain Redis client for looking at the keys."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from fleetq import Settings
from tests.fixtures import (  # noqa: F401 (fixtures)
    a1111_factory,
    comfy_factory,
    graph,
    queues,
    worker,
)


@pytest.fixture
async def raw(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    await client.aclose()
