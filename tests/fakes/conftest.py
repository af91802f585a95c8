"""Fixtures for the fake-server tests: servers on free loopback ports, an HTTP session, sockets."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

# The suite runs with --import-mode=importlib, which does not put test folders on sys.path;
# the helpers module next to this file is imported by name (unique: "fakes_testkit").
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes_testkit import Socket

from supervisor.sim.a1111 import FakeA1111
from supervisor.sim.comfyui import FakeComfyUI
from tests.fixtures import A1111Factory, ComfyFactory, a1111_factory, comfy_factory, http

# The shared fixtures this folder uses, registered here by their import.
__all__ = ["a1111_factory", "comfy_factory", "http"]

SocketFactory = Callable[..., Awaitable[Socket]]


@pytest.fixture
async def comfy(comfy_factory: ComfyFactory) -> FakeComfyUI:
    return await comfy_factory()


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
