"""Fixtures for the adapter tests: the fake backends as real servers on free loopback ports,
and adapters bound to them with short intervals so the folder stays fast."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

# --import-mode=importlib does not put test folders on sys.path; the helpers module next to
# this file has a unique name ("backends_testkit").
sys.path.insert(0, str(Path(__file__).resolve().parent))

from supervisor.backends.a1111 import A1111Backend
from supervisor.backends.comfyui import ComfyUIBackend
from supervisor.sim.a1111 import A1111Options, FakeA1111
from supervisor.sim.comfyui import ComfyUIOptions, FakeComfyUI
from tests.fixtures import http  # noqa: F401 (fixture)

FAST_COMFYUI: dict[str, Any] = {
    "poll_interval_s": 0.05,
    "check_interval_s": 1.0,
    "restart_grace_s": 1.0,
    "reconnect_min_s": 0.05,
    "reconnect_max_s": 0.2,
    "history_retry_delay_s": 0.02,
    "connect_timeout_s": 2.0,
    "interrupt_retry_s": 0.2,
}
FAST_A1111: dict[str, Any] = {
    "poll_interval_s": 0.05,
    "restart_grace_s": 1.0,
    "interrupt_retry_s": 0.2,
}


@pytest.fixture
async def comfy_server() -> AsyncIterator[FakeComfyUI]:
    server = FakeComfyUI("127.0.0.1", 0, ComfyUIOptions())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def comfyui_factory() -> AsyncIterator[Callable[..., ComfyUIBackend]]:
    """``comfyui_factory(url, **options)``: an adapter with fast intervals, closed at the end."""
    made: list[ComfyUIBackend] = []

    def make(url: str, **options: Any) -> ComfyUIBackend:
        backend = ComfyUIBackend(url, **{**FAST_COMFYUI, **options})
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


@pytest.fixture
def comfyui(
    comfy_server: FakeComfyUI, comfyui_factory: Callable[..., ComfyUIBackend]
) -> ComfyUIBackend:
    return comfyui_factory(comfy_server.url)


@pytest.fixture
async def a1111_server_factory() -> AsyncIterator[Callable[..., Awaitable[FakeA1111]]]:
    started: list[FakeA1111] = []

    async def make(**options: Any) -> FakeA1111:
        options.setdefault("step_seconds", 0.02)
        server = FakeA1111("127.0.0.1", 0, A1111Options(**options))
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def a1111_server(a1111_server_factory: Callable[..., Awaitable[FakeA1111]]) -> FakeA1111:
    return await a1111_server_factory()


@pytest.fixture
async def a1111_backend_factory() -> AsyncIterator[Callable[..., A1111Backend]]:
    made: list[A1111Backend] = []

    def make(url: str, **options: Any) -> A1111Backend:
        backend = A1111Backend(url, **{**FAST_A1111, **options})
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


@pytest.fixture
def a1111(
    a1111_server: FakeA1111, a1111_backend_factory: Callable[..., A1111Backend]
) -> A1111Backend:
    return a1111_backend_factory(a1111_server.url)
