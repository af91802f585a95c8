"""Fixtures for the gateway tests: the aiohttp application over the session's redis-server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import test_utils, web

from fleetq import Settings
from fleetq.gateway.app import create_app
from fleetq.worker import WorkerQueue

Client = test_utils.TestClient[web.Request, web.Application]
MakeGateway = Callable[..., Awaitable[Client]]


def comfy_graph(seed: int = 0) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "color": seed}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}},
    }


@pytest.fixture
def graph() -> dict[str, Any]:
    return comfy_graph()


@pytest.fixture
async def make_gateway(settings: Settings) -> AsyncIterator[MakeGateway]:
    """Start gateways (a real aiohttp server on a free loopback port each); all are closed at
    the end of the test."""
    started: list[Client] = []

    async def make(
        *,
        tokens: Sequence[str] = (),
        max_body_bytes: int | None = None,
        settings_: Settings | None = None,
    ) -> Client:
        app = create_app(settings_ or settings, tokens, max_body_bytes)
        client: Client = test_utils.TestClient(test_utils.TestServer(app))
        await client.start_server()
        started.append(client)
        return client

    yield make
    for client in started:
        await client.close()


@pytest.fixture
async def gw(make_gateway: MakeGateway) -> Client:
    return await make_gateway()


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[WorkerQueue]:
    queue = WorkerQueue(settings)
    yield queue
    await queue.aclose()


@pytest.fixture
async def raw_redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


class RedisFootprint:
    """What a request could have written: the namespace's keys and values, and DBSIZE."""

    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self.redis = redis
        self.pattern = "{" + namespace + "}:*"

    async def take(self) -> tuple[int, dict[bytes, Any]]:
        keys = sorted([k async for k in self.redis.scan_iter(match=self.pattern, count=1000)])
        dumped = {k: await self.redis.dump(k) for k in keys}
        return int(await self.redis.dbsize()), dumped

    async def assert_unchanged(self, before: tuple[int, dict[bytes, Any]]) -> None:
        size, keys = await self.take()
        assert keys == before[1], "the request wrote to Redis"
        # Other namespaces only lose keys (expiries) while this test runs; never gain.
        assert size <= before[0]


@pytest.fixture
def footprint(raw_redis: aioredis.Redis, namespace: str) -> RedisFootprint:
    return RedisFootprint(raw_redis, namespace)


ExpectError = Callable[[Any, int], Awaitable[dict[str, str]]]


async def _expect_error(response: Any, status: int) -> dict[str, str]:
    """Assert a JSON error answer with this status; return its ``error`` object."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json"
    body = json.loads(text)
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    assert isinstance(body["error"]["type"], str) and body["error"]["message"]
    assert "Traceback" not in text
    return dict(body["error"])


@pytest.fixture
def expect_error() -> ExpectError:
    return _expect_error
