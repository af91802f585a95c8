"""``run_gateway``: serve the gateway until SIGINT or SIGTERM, then shut down cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from aiohttp import web, web_response

from fleetq.config import Settings
from fleetq.connection import safe_url
from fleetq.gateway.app import SERVER_NAME, create_app
from fleetq.gateway.options import GatewayOptions
from fleetq.gateway.site import CappedTCPSite

log = logging.getLogger(__name__)

#: How long in-flight requests get to finish after a signal (open event streams end within a
#: second of it on their own).
SHUTDOWN_GRACE_S = 10.0


def run_gateway(
    settings: Settings,
    host: str,
    port: int,
    tokens: Sequence[str],
    *,
    max_body_bytes: int | None = None,
    options: GatewayOptions | None = None,
) -> int:
    """Serve the gateway on ``host:port``; blocks until SIGINT or SIGTERM. Returns 0.

    The signal stops accepting connections, ends open event streams, lets in-flight requests
    finish (up to :data:`SHUTDOWN_GRACE_S`), stops the event follower and closes Redis.
    """
    return asyncio.run(
        serve(
            settings,
            host,
            port,
            tokens,
            max_body_bytes=max_body_bytes,
            options=options,
            announce=True,
        )
    )


async def serve(
    settings: Settings,
    host: str,
    port: int,
    tokens: Sequence[str],
    *,
    max_body_bytes: int | None = None,
    options: GatewayOptions | None = None,
    started: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    announce: bool = False,
) -> int:
    """The async body of :func:`run_gateway`; ``stop`` ends it (signals set it too).

    ``announce`` prints the listening address on stderr, as a command-line server should.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Handlers only set the event; the shutdown itself runs below, in order.
        loop.add_signal_handler(sig, stop.set)
    # Answers aiohttp writes itself (to a request it cannot parse) never reach the application's
    # hooks; they take their Server header from this module constant, which names aiohttp's
    # and Python's versions.
    setattr(web_response, "SERVER_SOFTWARE", SERVER_NAME)  # noqa: B010 (not exported)
    opts = (options or GatewayOptions()).bound_to(host)
    app = create_app(settings, tokens, max_body_bytes, opts)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        site = CappedTCPSite(runner, host, port, max_connections=opts.max_connections)
        await site.start()
        auth = f"{len(tokens)} token(s)" if tokens else "no authentication"
        for address in runner.addresses:
            line = (
                f"fleetq gateway on http://{address[0]}:{address[1]} (Redis "
                f"{safe_url(settings.redis_url)}, namespace {settings.namespace}, {auth})"
            )
            log.info("%s", line)
            if announce:
                print(line, file=sys.stderr, flush=True)
        if started is not None:
            started.set()
        await stop.wait()
        log.info("fleetq gateway stopping")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    return 0
