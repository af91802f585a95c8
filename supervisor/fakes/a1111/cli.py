"""Start fake A1111 instances: from Python (``serve_a1111``), blocking (``run_fake_a1111``)
or from the shell (``python -m supervisor.fakes.a1111``)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from supervisor.fakes.a1111.options import ERROR_SHAPES, A1111Options
from supervisor.fakes.a1111.server import FakeA1111
from supervisor.fakes.group import FakeGroup, run_until_signalled, start_group
from supervisor.fakes.listener import STARTUP_MODES


async def serve_a1111(
    host: str = "127.0.0.1",
    port: int = 7860,
    count: int = 1,
    options: A1111Options | None = None,
) -> FakeGroup[FakeA1111]:
    """Start ``count`` fake A1111 servers on ``port``, ``port + 1``, ... (0: ephemeral ports).

    Returns once every port is bound (accepting may wait for ``startup_delay_s``). Close the
    group with ``await group.aclose()`` or ``async with``.
    """
    settings = options or A1111Options()

    def make(index: int, instance_port: int) -> FakeA1111:
        return FakeA1111(host, instance_port, settings, index=index)

    return await start_group(make, port, count)


def run_fake_a1111(host: str, port: int, count: int = 1, **options: Any) -> None:
    """Blocking: serve ``count`` fake A1111 instances until SIGINT or SIGTERM.

    ``options`` are ``A1111Options`` fields (``step_seconds=0.1``, ``error_shape="forge"``,
    ``webui=True``, ``startup_delay_s=5``, ...).
    """
    settings = A1111Options(**options)
    run_until_signalled(lambda: serve_a1111(host, port, count, settings))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m supervisor.fakes.a1111",
        description="Fake AUTOMATIC1111 servers for fleetq tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="first port (default 7860)")
    parser.add_argument("--count", type=int, default=1, help="instances on consecutive ports")
    parser.add_argument(
        "--step-seconds", type=float, default=0.05, help="time per sampling step (default 0.05)"
    )
    parser.add_argument(
        "--errors",
        choices=ERROR_SHAPES,
        default="a1111",
        help="error body shape: a1111 (default), forge, or forge-legacy (plain-text 500s)",
    )
    parser.add_argument(
        "--webui",
        action="store_true",
        help="UI mode (--api): adds /internal/ping and /internal/progress",
    )
    parser.add_argument("--api-auth", default=None, metavar="USER:PASS[,USER:PASS]")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="TITLE",
        help='checkpoint title like "name.safetensors [hash]" (repeatable)',
    )
    parser.add_argument(
        "--model-load-seconds",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="time to load a checkpoint: at its first use and after another one (default 0)",
    )
    parser.add_argument("--startup-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--startup-mode", choices=STARTUP_MODES, default="refuse")
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m supervisor.fakes.a1111 --port 7860 --count 2``; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    extra: dict[str, Any] = {"models": tuple(args.model)} if args.model else {}
    run_fake_a1111(
        args.host,
        args.port,
        args.count,
        step_seconds=args.step_seconds,
        error_shape=args.errors,
        webui=args.webui,
        api_auth=args.api_auth,
        model_load_s=args.model_load_seconds,
        startup_delay_s=args.startup_delay,
        startup_mode=args.startup_mode,
        **extra,
    )
    return 0
