"""A TCP site with a cap on open connections.

aiohttp accepts every connection. Past the cap, this site answers a new connection with a
plain 503 (``Connection: close``) and closes it, so a flood of idle or slow clients cannot
exhaust the process's file descriptors and memory, and a client over the cap learns why.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from fleetq.gateway.errors import RETRY_AFTER_S

#: How long a refused connection may stay open to read its answer.
REFUSED_LINGER_S = 1.0


def _refusal(max_connections: int) -> bytes:
    body = json.dumps(
        {
            "error": {
                "type": "TooManyConnections",
                "message": f"this gateway already has {max_connections} open connections "
                "(its --max-connections); retry later",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {RETRY_AFTER_S}\r\n"
        "Server: fleetq\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class _Refuse(asyncio.Protocol):
    """Answers 503, stops writing, and closes once the client does (or after a moment)."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.answer)
        if transport.can_write_eof():
            transport.write_eof()
        # Closing at once could reset the connection before the client reads the answer.
        asyncio.get_running_loop().call_later(REFUSED_LINGER_S, transport.close)
        self.transport = transport

    def eof_received(self) -> bool:
        self.transport.close()
        return False


class CappedTCPSite(web.TCPSite):
    """:class:`aiohttp.web.TCPSite` that refuses connections past ``max_connections``."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int
    ) -> None:
        super().__init__(runner, host, port)
        self.max_connections = max_connections

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site; TCPSite.start would also bind
        server = self._runner.server
        assert server is not None
        answer = _refusal(self.max_connections)

        def protocol() -> asyncio.Protocol:
            if len(server.connections) >= self.max_connections:
                return _Refuse(answer)
            return server()

        # The same call as TCPSite.start, with the capping factory.
        self._server = await asyncio.get_running_loop().create_server(
            protocol,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
