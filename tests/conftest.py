"""Shared fixtures: a real redis-server for the whole session, a fresh namespace per test.

Set FLEETQ_TEST_REDIS_URL to use a Redis you started yourself. Without a redis-server binary
the Redis tests are skipped, unless FLEETQ_REQUIRE_REDIS=1 (as in CI), which makes that an error.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from fleetq import AsyncClient, Client, Settings
from fleetq.embedded import RedisServer, redis_server_binary


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("FLEETQ_TEST_REDIS_URL")
    if url:
        yield url
        return
    if redis_server_binary() is None:
        if os.environ.get("FLEETQ_REQUIRE_REDIS") == "1":
            pytest.fail("FLEETQ_REQUIRE_REDIS=1 but redis-server is not installed")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def namespace() -> str:
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def settings(redis_url: str, namespace: str) -> Settings:
    return Settings(
        redis_url=redis_url, namespace=namespace, socket_timeout_s=5.0, block_timeout_s=1.0
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    with Client(settings) as c:
        yield c


@pytest.fixture
async def aclient(settings: Settings) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(settings) as c:
        yield c
