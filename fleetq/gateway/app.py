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
from fleetq.errors import InvalidArgument
from fleetq.gateway import legacy, openapi, streams, v1
from fleetq.gateway.auth import TOKENS, auth_middleware, check_tokens
from fleetq.gateway.errors import error_middleware
from fleetq.gateway.follower import RETRY_MAX_S, EventFollower
from fleetq.gateway.jsonio import BODY_CAP, body_cap_middleware, default_body_cap, json_response
from fleetq.gateway.metrics import GatewayMetrics
from fleetq.gateway.state import GATEWAY, Gateway, gateway, stream_block_ms

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, tokens: Sequence[str] = (), max_body_bytes: int | None = None
) -> web.Application:
    """Build the gateway for one fleet.

    ``tokens``: accepted bearer tokens; empty means no authentication. ``max_body_bytes``: the
    request body cap (default: the core's ``max_payload_bytes`` plus room for the envelope).
    Redis is first touched when the application starts; a Redis outage is answered with 503.
    """
    cap = default_body_cap(settings.max_payload_bytes) if max_body_bytes is None else max_body_bytes
    if cap <= 0:
        raise InvalidArgument(f"max_body_bytes must be positive, not {cap}")
    app = web.Application(
        middlewares=[error_middleware, auth_middleware, body_cap_middleware],
        client_max_size=cap,
    )
    app[BODY_CAP] = cap
    app[TOKENS] = check_tokens(tokens)
    client = AsyncClient(settings)
    metrics = GatewayMetrics()
    state = Gateway(
        settings=settings,
        client=client,
        metrics=metrics,
        follower=EventFollower(client.store, metrics.timings, stream_block_ms(settings)),
    )
    app[GATEWAY] = state
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
    """Readiness: Redis answers a PING (503 otherwise, via the error middleware)."""
    await gateway(request).client.store.command("ping")
    return json_response({"status": "ready"})


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    state = app[GATEWAY]
    task = asyncio.create_task(state.follower.run(), name="fleetq-gateway-follower")
    try:
        yield
    finally:
        state.follower.stop()
        await _stop_task(task, state.settings.socket_timeout_s + RETRY_MAX_S)
        await state.client.aclose()


async def _stop_task(task: asyncio.Task[None], limit_s: float) -> None:
    """Cancel ``task`` and wait for it, cancelling again while it runs on: redis-py can lose a
    cancellation that lands while it sets up a connection (redis/redis-py#2028)."""
    deadline = time.monotonic() + limit_s
    while not task.done() and time.monotonic() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.05)
    if not task.done():
        log.warning("the event follower did not stop within %.0f s", limit_s)
    elif not task.cancelled() and task.exception() is not None:
        log.error("the event follower failed", exc_info=task.exception())


async def _closing(app: web.Application) -> None:
    # Open event streams check this between blocking reads and end within a second.
    app[GATEWAY].closing.set()
