"""What every handler of one gateway application shares."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from fleetq.aclient import AsyncClient
from fleetq.config import Settings
from fleetq.gateway.fanout import StreamFanout
from fleetq.gateway.follower import EventFollower
from fleetq.gateway.metrics import GatewayMetrics
from fleetq.gateway.options import GatewayOptions


@dataclass
class Gateway:
    """The client, the metrics, the event follower and the stream reader of one application."""

    settings: Settings
    client: AsyncClient
    metrics: GatewayMetrics
    follower: EventFollower
    #: The one reader of Redis streams that every open event stream subscribes to.
    fanout: StreamFanout
    #: Where output URLs point: the configured public URL, else the address a client reached.
    public_url: str | None = None
    #: Set when the server shuts down.
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def close_streams(self) -> None:
        """End every open event stream now (the server is shutting down)."""
        self.closing.set()
        self.fanout.stop()


def stream_block_ms(settings: Settings) -> int:
    """How long one blocking read of the stream reader waits before it re-arms.

    Short, so the reader notices a shutdown (and, where CLIENT UNBLOCK is refused, a newly
    followed stream) quickly; always below the socket timeout.
    """
    return max(10, int(min(1.0, settings.block_timeout_s) * 1000))


GATEWAY: web.AppKey[Gateway] = web.AppKey("fleetq_gateway")
#: The options of an application (set by ``create_app``).
OPTIONS: web.AppKey[GatewayOptions] = web.AppKey("fleetq_gateway_options")


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def base_url(request: web.Request) -> str:
    """Scheme, host and port for the URLs of output files: the configured public URL, else the
    address and port the client connected to. Never the ``Host`` header, which a client (or a
    DNS-rebinding page) chooses freely."""
    configured = request.app[GATEWAY].public_url
    if configured:
        return configured
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return ""
    host, port = str(sockname[0]), int(sockname[1])
    if ":" in host:
        host = f"[{host.partition('%')[0]}]"
    return f"{request.scheme}://{host}:{port}"
