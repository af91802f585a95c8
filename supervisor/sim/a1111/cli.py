"""Start fake A1111 instances: from Python (``serve_a1111``), blocking (``run_fake_a1111``)
or from the shell (``fleetq fake-a1111`` or ``python -m supervisor.sim.a1111``)."""

from __future__ import annotations

import argparse
import logging
import textwrap
from collections.abc import Sequence
from typing import Any

from fleetq.cli.parsing import CliParser, port, positive_int, seconds
from supervisor.sim.a1111.options import ERROR_SHAPES, A1111Options
from supervisor.sim.a1111.server import FakeA1111
from supervisor.sim.group import FakeGroup, run_until_signalled, start_group
from supervisor.sim.listener import STARTUP_MODES


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


DESCRIPTION = (
    "Serve fake AUTOMATIC1111 instances on consecutive ports (the /sdapi/v1 API, steered by "
    "markers in the prompt) until SIGINT or SIGTERM."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The fake's options, for ``fleetq fake-a1111`` and ``python -m supervisor.sim.a1111``."""
    parser.description = textwrap.fill(DESCRIPTION, 78)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=7860, help="first port (default 7860)")
    parser.add_argument(
        "--count",
        type=positive_int,
        default=1,
        metavar="N",
        help="instances on consecutive ports (default 1)",
    )
    parser.add_argument(
        "--step-seconds",
        type=seconds,
        default=0.05,
        metavar="S",
        help="time per sampling step (default 0.05)",
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
    parser.add_argument(
        "--api-auth",
        default=None,
        metavar="USER:PASS[,USER:PASS]",
        help="require HTTP basic auth, like A1111 --api-auth (default: none)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="TITLE",
        help='checkpoint title like "name.safetensors [hash]" (repeatable)',
    )
    parser.add_argument(
        "--model-load-seconds",
        type=seconds,
        default=0.0,
        metavar="S",
        help="time to load a checkpoint: at its first use and after another one (default 0)",
    )
    parser.add_argument(
        "--startup-delay",
        type=seconds,
        default=0.0,
        metavar="S",
        help="unreachable for this long after start and after /fake/restart",
    )
    parser.add_argument(
        "--startup-mode",
        choices=STARTUP_MODES,
        default="refuse",
        help="while starting up: refuse connections (default) or answer 503",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log verbosity (default INFO)",
    )


def build_parser(prog: str = "python -m supervisor.sim.a1111") -> argparse.ArgumentParser:
    parser = CliParser(prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Serve with parsed options until SIGINT or SIGTERM; returns the exit code."""
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    extra: dict[str, Any] = {"models": tuple(args.model)} if args.model else {}
    run_fake_a1111(
        args.host,
        args.port,
        args.count,
        step_seconds=args.step_seconds,
        error_shape=args.errors,
        webui=args.webui,
        api_auth=args.api_auth,
        startup_delay_s=args.startup_delay,
        startup_mode=args.startup_mode,
        model_load_s=args.model_load_seconds,
        **extra,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m supervisor.sim.a1111 --port 7860 --count 2``; returns the exit code."""
    return run(build_parser().parse_args(argv))
