"""The gateway application: routes, middlewares, and the lifetime of its Redis client and its
event follower."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from fleetq.aclient import AsyncClient
from fleetq.config import Settings
from fleetq.errors import InvalidArgument, RedisUnavailable
from fleetq.gateway import legacy, openapi, streams, v1
from fleetq.gateway.auth import TOKENS, auth_middleware, check_tokens
from fleetq.gateway.errors import RETRY_AFTER_S, error_middleware, error_response
from fleetq.gateway.fanout import StreamFanout
from fleetq.gateway.follower import RETRY_MAX_S, EventFollower
from fleetq.gateway.guard import guard_middleware
from fleetq.gateway.jsonio import BODY_CAP, body_cap_middleware, default_body_cap, json_response
from fleetq.gateway.metrics import GatewayMetrics
from fleetq.gateway.options import GatewayOptions
from fleetq.gateway.state import GATEWAY, OPTIONS, Gateway, gateway, stream_block_ms
from fleetq.store import AsyncStore

log = logging.getLogger(__name__)

#: The ``Server`` header of every answer: the product, no version.
SERVER_NAME = "fleetq"


def create_app(
    settings: Settings,
    tokens: Sequence[str] = (),
    max_body_bytes: int | None = None,
    options: GatewayOptions | None = None,
) -> web.Application:
    """Build the gateway for one fleet.

    ``tokens``: accepted bearer tokens; empty means no authentication. ``max_body_bytes``: the
    request body cap (default: the core's ``max_payload_bytes`` and ``max_input_bytes`` in
    base64, plus room for the envelope).
    ``options``: public URL, accepted host names and origins, limits (see
    :class:`~fleetq.gateway.options.GatewayOptions`).
    Redis is first touched when the application starts; a Redis outage is answered with 503.
    """
    cap = (
        default_body_cap(settings.max_payload_bytes, settings.max_input_bytes)
        if max_body_bytes is None
        else max_body_bytes
    )
    if cap <= 0:
        raise InvalidArgument(f"max_body_bytes must be positive, not {cap}")
    opts = (options or GatewayOptions()).checked()
    app = web.Application(
        middlewares=[error_middleware, guard_middleware, auth_middleware, body_cap_middleware],
        client_max_size=cap,
        handler_args={
            # A client that leaves cancels its handler: an event stream ends at once, not at
            # its next write. Writes to Redis are single scripts, atomic either way.
            "handler_cancellation": True,
            # Both the time to send a request's headers and the idle time between requests:
            # aiohttp closes a connection whose headers are incomplete when it runs out.
            "keepalive_timeout": opts.header_timeout_s,
        },
    )
    app[BODY_CAP] = cap
    app[TOKENS] = check_tokens(tokens)
    app[OPTIONS] = opts
    client = AsyncClient(settings)
    metrics = GatewayMetrics()
    block_ms = stream_block_ms(settings)
    # The reader gets a Redis client of its own: streams never take request connections.
    fanout = StreamFanout(
        AsyncStore(settings), client.store, block_ms=block_ms, max_subscribers=opts.max_streams
    )
    metrics.watch_streams(fanout)
    state = Gateway(
        settings=settings,
        client=client,
        metrics=metrics,
        follower=EventFollower(client.store, fanout, metrics.timings, block_ms),
        fanout=fanout,
        public_url=opts.public_url,
    )
    app[GATEWAY] = state
    app.on_response_prepare.append(_server_header)
    app[openapi.OPENAPI] = openapi.build_openapi(settings)

    app.router.add_routes(legacy.routes)
    app.router.add_routes(v1.routes)
    app.router.add_routes(streams.routes)
    app.router.add_get("/metrics", metrics.handler(client.store))
    app.router.add_get("/openapi.json", openapi.openapi)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    app.cleanup_ctx.append(_lifetime)
    app.on_shutdown.append(_closing)
    return app


async def healthz(request: web.Request) -> web.Response:
    """Liveness: answers while the process serves requests; never touches Redis."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: Redis answers a PING; 503 otherwise. The answer names no host or port:
    the route is open to anyone."""
    try:
        await gateway(request).client.store.command("ping")
    except RedisUnavailable as e:
        log.warning("not ready: %s", e)
        return error_response(503, "NotReady", "not ready", {"Retry-After": str(RETRY_AFTER_S)})
    return json_response({"status": "ready"})


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp would announce its version (and Python's) to anyone.
    response.headers["Server"] = SERVER_NAME


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    state = app[GATEWAY]
    task = asyncio.create_task(state.follower.run(), name="fleetq-gateway-follower")
    reader = asyncio.create_task(state.fanout.run(), name="fleetq-gateway-streams")
    try:
        yield
    finally:
        state.follower.stop()
        state.fanout.stop()
        limit_s = state.settings.socket_timeout_s + RETRY_MAX_S
        await _stop_task(task, limit_s)
        await _stop_task(reader, limit_s)
        await state.fanout.reader.aclose()
        await state.client.aclose()


async def _stop_task(task: asyncio.Task[None], limit_s: float) -> None:
    """Cancel ``task`` and wait for it, cancelling again while it runs on: redis-py can lose a
    cancellation that lands while it sets up a connection (redis/redis-py#2028)."""
    deadline = time.monotonic() + limit_s
    while not task.done() and time.monotonic() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.05)
    if not task.done():
        log.warning("%s did not stop within %.0f s", task.get_name(), limit_s)
    elif not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())


async def _closing(app: web.Application) -> None:
    # Open event streams end now, so the server does not wait for them.
    app[GATEWAY].close_streams()
