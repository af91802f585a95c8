"""What every fake backend server shares: an aiohttp app, its listener and its lifecycle."""

from __future__ import annotations

import abc
from typing import ClassVar

from aiohttp import web

from supervisor.sim.listener import Listener, StartupMode, unavailable_middleware

MAX_REQUEST_BYTES = 100 * 1024 * 1024
"""ComfyUI's default ``--max-upload-size``; also room for base64 images sent to A1111."""


class FakeServer(abc.ABC):
    """One fake backend instance on one port, started and stopped from a running event loop.

    Subclasses add their routes in ``_add_routes`` and their background work in ``_on_start``
    / ``_on_stop``. The listener plays the "slow to start" modes (see ``listener``).
    """

    kind: ClassVar[str] = "backend"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, index: int = 0) -> None:
        self.host = host
        self.index = index
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._listener: Listener | None = None
        self._stopping = False

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for); valid after ``start()``."""
        return self._listener.port if self._listener is not None else self._requested_port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8188``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Started and not (being) stopped."""
        return self._runner is not None and not self._stopping

    @property
    def ready(self) -> bool:
        """True when the port accepts and backend routes answer (startup delay over)."""
        return self._listener is not None and self._listener.ready

    async def start(self) -> None:
        """Bind the port and start serving (after the configured startup delay)."""
        if self._runner is not None:
            raise RuntimeError(f"fake {self.kind} on port {self.port} is already started")
        app = web.Application(
            middlewares=[unavailable_middleware(lambda: self._listener)],
            client_max_size=MAX_REQUEST_BYTES,
        )
        self._add_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        self._runner = runner
        self._listener = Listener(runner, self.host, self._requested_port)
        await self._on_start()
        delay_s, mode = self._startup()
        await self._listener.open(delay_s, mode)

    async def stop(self) -> None:
        """Close every connection and background task; safe to call twice."""
        if self._runner is None or self._stopping:
            return
        self._stopping = True
        await self._on_stop()
        if self._listener is not None:
            await self._listener.close()
        await self._runner.cleanup()
        self._runner = None
        self._stopping = False

    async def wait_ready(self, timeout_s: float | None = 10.0) -> None:
        """Wait until the server accepts connections and answers normally."""
        if self._listener is None:
            raise RuntimeError(f"fake {self.kind} is not started")
        await self._listener.wait_ready(timeout_s)

    async def _bounce_listener(self, delay_s: float, mode: StartupMode) -> None:
        """Close the port and open it again, as a restarting process does."""
        if self._listener is not None and self.running:
            await self._listener.reopen(delay_s, mode)

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @abc.abstractmethod
    def _add_routes(self, app: web.Application) -> None: ...

    @abc.abstractmethod
    def _startup(self) -> tuple[float, StartupMode]: ...

    async def _on_start(self) -> None:
        return None

    async def _on_stop(self) -> None:
        return None
