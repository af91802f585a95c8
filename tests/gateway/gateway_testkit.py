"""Helpers of the gateway tests."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

#: ``spawn_gateway(tokens=..., **GatewayOptions fields)`` -> the base URL of a new process.
SpawnGateway = Callable[..., Awaitable[str]]


async def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Until ``condition()`` holds (for server state that has no event to await)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s"
        await asyncio.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
