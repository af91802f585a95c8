"""Fixtures for the scheduling tests: fake backends on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from supervisor.fakes.a1111 import A1111Options, FakeA1111
from supervisor.fakes.comfyui import ComfyUIOptions, FakeComfyUI

ComfyFactory = Callable[..., Awaitable[FakeComfyUI]]
A1111Factory = Callable[..., Awaitable[FakeA1111]]


@pytest.fixture
async def comfy_factory() -> AsyncIterator[ComfyFactory]:
    """Start fake ComfyUI servers: ``await comfy_factory(checkpoints=("a.safetensors",))``."""
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
async def a1111_factory() -> AsyncIterator[A1111Factory]:
    """Start fake A1111 servers (fast steps unless told otherwise)."""
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
