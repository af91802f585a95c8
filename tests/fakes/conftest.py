"""Fixtures for the fake-server tests: servers on free loopback ports, an HTTP session, sockets."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

# The suite runs with --import-mode=importlib, which does not put test folders on sys.path;
# the helpers module next to this file is imported by name (unique: "fakes_testkit").
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes_testkit import Socket

from supervisor.fakes.a1111 import A1111Options, FakeA1111
from supervisor.fakes.comfyui import ComfyUIOptions, FakeComfyUI

ComfyFactory = Callable[..., Awaitable[FakeComfyUI]]
A1111Factory = Callable[..., Awaitable[FakeA1111]]
SocketFactory = Callable[..., Awaitable[Socket]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
async def comfy_factory() -> AsyncIterator[ComfyFactory]:
    """Start fake ComfyUI servers on free ports: ``await comfy_factory(history_delay_s=...)``."""
    started: list[FakeComfyUI] = []

    async def make(**options: Any) -> FakeComfyUI:
        server = FakeComfyUI("127.0.0.1", 0, ComfyUIOptions(**options))
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def comfy(comfy_factory: ComfyFactory) -> FakeComfyUI:
    return await comfy_factory()


@pytest.fixture
async def a1111_factory() -> AsyncIterator[A1111Factory]:
    """Start fake A1111 servers on free ports (fast steps unless told otherwise)."""
    started: list[FakeA1111] = []

    async def make(**options: Any) -> FakeA1111:
        options.setdefault("step_seconds", 0.01)
        server = FakeA1111("127.0.0.1", 0, A1111Options(**options))
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def a1111(a1111_factory: A1111Factory) -> FakeA1111:
    return await a1111_factory()


@pytest.fixture
async def connect(http: aiohttp.ClientSession) -> AsyncIterator[SocketFactory]:
    """Open a WebSocket: ``await connect(server, "client-id")``; the first ``status`` is read."""
    opened: list[aiohttp.ClientWebSocketResponse] = []

    async def open_socket(
        server: FakeComfyUI,
        client_id: str | None = None,
        prefix: str = "",
        read_status: bool = True,
    ) -> Socket:
        ws = await http.ws_connect(server.ws_url(client_id, prefix))
        opened.append(ws)
        socket = Socket(ws)
        if read_status:
            first = await socket.next()
            assert first["type"] == "status"
        return socket

    yield open_socket
    for ws in opened:
        with contextlib.suppress(Exception):
            await ws.close()
