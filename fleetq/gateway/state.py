"""What every handler of one gateway application shares."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from fleetq.aclient import AsyncClient
from fleetq.config import Settings
from fleetq.gateway.follower import EventFollower
from fleetq.gateway.metrics import GatewayMetrics


@dataclass
class Gateway:
    """The client, the metrics and the event follower of one application."""

    settings: Settings
    client: AsyncClient
    metrics: GatewayMetrics
    follower: EventFollower
    #: Set when the server shuts down, so open event streams end within a block timeout.
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def stream_block_ms(self) -> int:
        return stream_block_ms(self.settings)


def stream_block_ms(settings: Settings) -> int:
    """How long one blocking read of an event stream waits before it re-arms.

    Short, so an open stream notices a shutdown quickly; always below the socket timeout.
    """
    return max(10, int(min(1.0, settings.block_timeout_s) * 1000))


GATEWAY: web.AppKey[Gateway] = web.AppKey("fleetq_gateway")


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]


def base_url(request: web.Request) -> str:
    """Scheme and host the client used to reach us, for the URLs of output files."""
    return str(request.url.origin())
