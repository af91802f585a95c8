"""``fleetq gateway``: the sub-command, registered by ``fleetq.cli.dispatch``.

This module imports nothing heavy; aiohttp and prometheus-client load inside the command.
"""

from __future__ import annotations

import argparse
from typing import Any

from fleetq.config import Settings
from fleetq.errors import InvalidArgument
from fleetq.gateway.options import GatewayOptions
from fleetq.validation import parse_ascii_int

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULTS = GatewayOptions()


def _positive_int(raw: str) -> int:
    try:
        return parse_ascii_int(raw, "the value", 1)
    except InvalidArgument as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _port(raw: str) -> int:
    try:
        return parse_ascii_int(raw, "port", 0, 65535)
    except InvalidArgument as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from None
    if not (raw.isascii() and 0 < value < 86400):
        raise argparse.ArgumentTypeError(f"seconds must be an ASCII number 0..86400: {raw!r}")
    return value


def gateway_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the gateway with the parsed options (blocks until SIGINT or SIGTERM)."""
    from fleetq.gateway.auth import load_tokens
    from fleetq.gateway.main import run_gateway

    tokens = load_tokens(args.token or (), args.tokens_file)
    options = GatewayOptions(
        public_url=args.public_url,
        allowed_hosts=tuple(args.allow_host or ()),
        allowed_origins=tuple(args.allow_origin or ()),
        max_streams=args.max_streams,
        max_connections=args.max_connections,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
    ).checked()
    return run_gateway(
        settings,
        args.host,
        args.port,
        tokens,
        max_body_bytes=args.max_body_bytes,
        options=options,
    )


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
    p.add_argument(
        "--public-url",
        metavar="URL",
        help="where clients reach the gateway (https://fleet.example.com): the base of output "
        "file URLs, an accepted host name and origin (default: the address a client connected to)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="accept this Host name when no token is configured (repeatable; loopback names, "
        "the bind address and the public URL's host are always accepted)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        metavar="ORIGIN",
        help="let web pages of this origin (https://tools.example.com) send writes (repeatable)",
    )
    p.add_argument(
        "--max-streams",
        type=_positive_int,
        default=DEFAULTS.max_streams,
        metavar="N",
        help=f"open event streams at most (default {DEFAULTS.max_streams})",
    )
    p.add_argument(
        "--max-connections",
        type=_positive_int,
        default=DEFAULTS.max_connections,
        metavar="N",
        help=f"open client connections at most (default {DEFAULTS.max_connections})",
    )
    p.add_argument(
        "--header-timeout",
        type=_positive_seconds,
        default=DEFAULTS.header_timeout_s,
        metavar="S",
        help="seconds to send request headers, and the longest idle time of a connection "
        f"(default {DEFAULTS.header_timeout_s:g})",
    )
    p.add_argument(
        "--body-timeout",
        type=_positive_seconds,
        default=DEFAULTS.body_timeout_s,
        metavar="S",
        help=f"seconds to send a request body (default {DEFAULTS.body_timeout_s:g})",
    )
    p.set_defaults(delegate=gateway_command)
    return p
