"""The listening socket of one fake server, including the "slow to start" behaviour.

A real backend is unreachable for a while after it starts (ComfyUI loads its nodes for half a
minute before it opens the port) and again while it restarts. Two ways to play that:

- ``"refuse"``: the socket is bound at once (so the port is known and reserved, even port 0)
  but ``listen()`` is only called when the delay is over; until then a connect gets
  ECONNREFUSED, exactly like a process that has not opened its port yet.
- ``"503"``: the port accepts at once but every backend route answers 503 until the delay is
  over, the way a reverse proxy in front of a starting backend does. ``/fake/*`` stays open so a
  test can still steer and inspect the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Middleware

StartupMode = Literal["refuse", "503"]
STARTUP_MODES: tuple[StartupMode, ...] = ("refuse", "503")
HOOK_PREFIX = "/fake/"


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Listener:
    """Bind now, accept later; close and re-open on the same port to play a restart."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self._host = host
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._site: web.SockSite | None = None
        self._opener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._available_at = 0.0
        self.port = port

    @property
    def ready(self) -> bool:
        """True once connections are accepted and backend routes answer normally."""
        return self._ready.is_set() and self.available

    @property
    def listening(self) -> bool:
        """False while the port is closed ("refuse" window, or between restarts)."""
        return self._site is not None

    @property
    def available(self) -> bool:
        """False while the "503" startup window is open."""
        return asyncio.get_running_loop().time() >= self._available_at

    async def open(self, delay_s: float = 0.0, mode: StartupMode = "refuse") -> None:
        """Bind the port; start accepting now or after ``delay_s`` as ``mode`` says."""
        if mode not in STARTUP_MODES:
            raise ValueError(f"startup mode must be one of {STARTUP_MODES}, got {mode!r}")
        self._sock = _bind(self._host, self.port or self._requested_port)
        self.port = int(self._sock.getsockname()[1])
        loop = asyncio.get_running_loop()
        if delay_s <= 0:
            self._available_at = 0.0
            await self._listen()
        elif mode == "503":
            self._available_at = loop.time() + delay_s
            await self._listen()
        else:
            self._available_at = 0.0
            self._opener = asyncio.create_task(
                self._listen_later(delay_s), name=f"fake-listen-{self.port}"
            )

    async def close(self) -> None:
        """Stop accepting (open connections stay up) and release the socket."""
        if self._opener is not None:
            self._opener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._opener
            self._opener = None
        self._ready.clear()
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def reopen(self, delay_s: float, mode: StartupMode) -> None:
        """Play a restart: close the port and open it again after ``delay_s``."""
        await self.close()
        await self.open(delay_s, mode)

    async def wait_ready(self, timeout_s: float | None = None) -> None:
        """Wait until the port accepts and the "503" window (if any) is over."""

        async def _wait() -> None:
            await self._ready.wait()
            remaining = self._available_at - asyncio.get_running_loop().time()
            if remaining > 0:
                await asyncio.sleep(remaining)

        await asyncio.wait_for(_wait(), timeout_s)

    async def _listen_later(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self._listen()

    async def _listen(self) -> None:
        assert self._sock is not None
        self._site = web.SockSite(self._runner, self._sock)
        await self._site.start()
        self._ready.set()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def unavailable_middleware(listener: Callable[[], Listener | None]) -> Middleware:
    """While the server plays "down" (``/fake/*`` excepted): in a "503" window answer 503;
    while the port is closed, drop requests arriving on connections opened before, as a dead
    process would."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        current = listener()
        if current is None or request.path.startswith(HOOK_PREFIX):
            return await handler(request)
        if not current.listening:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        if not current.available:
            return web.Response(
                status=503, text="503: backend is starting", headers={"Retry-After": "1"}
            )
        return await handler(request)

    return middleware
