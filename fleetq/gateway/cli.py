"""``fleetq gateway``: the sub-command, registered by ``fleetq.cli.dispatch``.

This module imports nothing heavy; aiohttp and prometheus-client load inside the command.
"""

from __future__ import annotations

import argparse
from typing import Any

from fleetq.config import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {raw!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return value


def _port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {raw!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, not {value}")
    return value


def gateway_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the gateway with the parsed options (blocks until SIGINT or SIGTERM)."""
    from fleetq.gateway.auth import load_tokens
    from fleetq.gateway.main import run_gateway

    tokens = load_tokens(args.token or (), args.tokens_file)
    return run_gateway(settings, args.host, args.port, tokens, max_body_bytes=args.max_body_bytes)


def add_gateway_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Register ``fleetq gateway`` on the sub-parser collection ``sub``.

    The parser sets ``delegate=gateway_command``; the handler takes ``(args, settings)`` and
    returns the exit status.
    """
    p: argparse.ArgumentParser = sub.add_parser(
        "gateway",
        parents=[common],
        help="serve the HTTP API and Prometheus metrics",
        description="Serve the HTTP gateway: the replaced FastAPI endpoints (/submit, /status, "
        "/stats), fleetq's API under /v1, /metrics and /openapi.json. See docs/GATEWAY.md.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    p.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    p.add_argument(
        "--token",
        action="append",
        metavar="TOKEN",
        help="accept this bearer token (repeatable; also $FLEETQ_GATEWAY_TOKENS, comma "
        "separated); with no token at all the gateway is open",
    )
    p.add_argument(
        "--tokens-file",
        metavar="PATH",
        help="read bearer tokens from a file, one per line (# comments allowed)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=None,
        metavar="N",
        help="request body cap (default: FLEETQ_MAX_PAYLOAD_BYTES plus 1 MiB or a quarter)",
    )
    p.set_defaults(delegate=gateway_command)
    return p
