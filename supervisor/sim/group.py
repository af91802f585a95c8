"""Start several fake servers on consecutive ports in one process, and run them until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from supervisor.sim.base import FakeServer

log = logging.getLogger(__name__)

S = TypeVar("S", bound=FakeServer)


class FakeGroup(Generic[S]):
    """The started instances of one fake backend; close them with ``aclose()`` or ``async with``."""

    def __init__(self, servers: list[S]) -> None:
        self.servers = servers

    @property
    def urls(self) -> list[str]:
        """Base URLs in port order."""
        return [server.url for server in self.servers]

    async def wait_ready(self, timeout_s: float | None = 10.0) -> None:
        """Wait until every instance answers (its startup delay is over)."""
        await asyncio.gather(*(server.wait_ready(timeout_s) for server in self.servers))

    async def aclose(self) -> None:
        """Stop every instance (in parallel: each may hold open sockets)."""
        await asyncio.gather(*(server.stop() for server in self.servers))

    async def __aenter__(self) -> FakeGroup[S]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __iter__(self) -> Iterator[S]:
        return iter(self.servers)

    def __len__(self) -> int:
        return len(self.servers)

    def __getitem__(self, index: int) -> S:
        return self.servers[index]


async def start_group(make: Callable[[int, int], S], port: int, count: int) -> FakeGroup[S]:
    """Start ``count`` servers built by ``make(index, port)`` on ``port``, ``port + 1``, ...

    ``port`` 0 gives every instance its own ephemeral port. If one fails to bind, the ones
    already started are stopped before the error propagates.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if not 0 <= port <= 65535 or (port and port + count - 1 > 65535):
        raise ValueError(f"ports {port}..{port + count - 1} are out of range")
    servers: list[S] = []
    try:
        for index in range(count):
            server = make(index, port + index if port else 0)
            await server.start()
            servers.append(server)
    except BaseException:
        await asyncio.gather(*(server.stop() for server in servers))
        raise
    return FakeGroup(servers)


def run_until_signalled(start: Callable[[], Awaitable[FakeGroup[S]]]) -> None:
    """Blocking: start a group, serve until SIGINT or SIGTERM, then close it cleanly."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        handled: list[signal.Signals] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Windows event loops have no signal handlers; Ctrl-C then raises KeyboardInterrupt.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
                handled.append(signum)
        group = await start()
        try:
            for server in group:
                log.info("fake %s #%d listening on %s", server.kind, server.index, server.url)
            await stop.wait()
            log.info("stopping %d fake %s instance(s)", len(group), group[0].kind)
        finally:
            await group.aclose()
            for signum in handled:
                loop.remove_signal_handler(signum)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
