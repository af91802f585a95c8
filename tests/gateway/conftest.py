"""Fixtures for the gateway tests: the aiohttp application over the session's redis-server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import test_utils, web

from fleetq import Settings
from fleetq.gateway.app import create_app
from fleetq.gateway.options import GatewayOptions
from tests.fixtures import graph, worker  # noqa: F401 (fixtures)
from tests.gateway.gateway_testkit import SpawnGateway, free_port

Client = test_utils.TestClient[web.Request, web.Application]
MakeGateway = Callable[..., Awaitable[Client]]


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
        **options: Any,
    ) -> Client:
        app = create_app(settings_ or settings, tokens, max_body_bytes, GatewayOptions(**options))
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


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def spawn_gateway(settings: Settings, tmp_path: Path) -> AsyncIterator[SpawnGateway]:
    """Start gateway processes (``fleetq.gateway.main.run_gateway`` on a free loopback port,
    with the given tokens and :class:`GatewayOptions` fields); yields their base URL once they
    answer ``/healthz``. Each gets SIGTERM at the end of the test."""
    procs: list[subprocess.Popen[bytes]] = []

    async def spawn(*, tokens: Sequence[str] = (), **options: Any) -> str:
        port = free_port()
        code = (
            "import sys\n"
            "from fleetq import Settings\n"
            "from fleetq.gateway.main import run_gateway\n"
            "from fleetq.gateway.options import GatewayOptions\n"
            f"settings = Settings(redis_url={settings.redis_url!r}, "
            f"namespace={settings.namespace!r}, socket_timeout_s=5.0, block_timeout_s=1.0)\n"
            f"sys.exit(run_gateway(settings, '127.0.0.1', {port}, {list(tokens)!r}, "
            f"options=GatewayOptions(**{options!r})))\n"
        )
        log = open(tmp_path / f"gateway-{port}.log", "wb")  # noqa: SIM115 (kept until exit)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=log)
        log.close()
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:  # the process needs a moment to import and bind
                assert proc.poll() is None, (tmp_path / f"gateway-{port}.log").read_text()
                try:
                    async with session.get(base + "/healthz") as r:
                        if r.status == 200:
                            return base
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "the gateway did not start"
                await asyncio.sleep(0.05)

    yield spawn
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
