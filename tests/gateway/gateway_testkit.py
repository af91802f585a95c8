"""Helpers of the gateway tests."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

#: ``spawn_gateway(tokens=..., **GatewayOptions fields)`` -> the base URL of a new process.
SpawnGateway = Callable[..., Awaitable[str]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
