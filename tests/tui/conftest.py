"""Fixtures for the dashboard tests: the app against the session redis-server, and a GPU
publisher that stands in for supervisors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from fleetq import AsyncClient, Settings
from fleetq.worker import WorkerQueue
from tui.app import FleetqApp, create_app


@pytest.fixture
def make_app(settings: Settings) -> Callable[..., FleetqApp]:
    def make(readonly: bool = False, **kwargs: Any) -> FleetqApp:
        return create_app(settings, readonly=readonly, refresh_s=0.2, **kwargs)

    return make


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[WorkerQueue]:
    queue = WorkerQueue(settings)
    yield queue
    await queue.aclose()


@pytest.fixture
def publish(aclient: AsyncClient) -> Callable[..., Awaitable[None]]:
    """Publish a host record as a supervisor would."""

    async def publish_host(
        host: str, gpus: list[dict[str, Any]], ttl_ms: int = 60_000, **record: Any
    ) -> None:
        await aclient.store.publish_host(host, {"version": "test", **record}, gpus, ttl_ms)

    return publish_host
