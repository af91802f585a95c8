"""Start fake ComfyUI instances: from Python (``serve_comfyui``), blocking
(``run_fake_comfyui``) or from the shell (``fleetq fake-comfyui`` or
``python -m supervisor.sim.comfyui``)."""

from __future__ import annotations

import argparse
import logging
import textwrap
from collections.abc import Sequence
from typing import Any

from fleetq.cli.parsing import CliParser, port, positive_int, seconds
from supervisor.sim.comfyui.options import PREVIEW_METHODS, ComfyUIOptions
from supervisor.sim.comfyui.server import FakeComfyUI
from supervisor.sim.group import FakeGroup, run_until_signalled, start_group
from supervisor.sim.listener import STARTUP_MODES


async def serve_comfyui(
    host: str = "127.0.0.1",
    port: int = 8188,
    count: int = 1,
    options: ComfyUIOptions | None = None,
) -> FakeGroup[FakeComfyUI]:
    """Start ``count`` fake ComfyUI servers on ``port``, ``port + 1``, ... (0: ephemeral ports).

    Returns once every port is bound (accepting may wait for ``startup_delay_s``). Close the
    group with ``await group.aclose()`` or ``async with``.
    """
    settings = options or ComfyUIOptions()

    def make(index: int, instance_port: int) -> FakeComfyUI:
        return FakeComfyUI(host, instance_port, settings, index=index)

    return await start_group(make, port, count)


def run_fake_comfyui(host: str, port: int, count: int = 1, **options: Any) -> None:
    """Blocking: serve ``count`` fake ComfyUI instances until SIGINT or SIGTERM.

    ``options`` are ``ComfyUIOptions`` fields (``history_delay_s=0.2``, ``caching=False``,
    ``startup_delay_s=5``, ``checkpoints=("model.safetensors",)``, ...).
    """
    settings = ComfyUIOptions(**options)
    run_until_signalled(lambda: serve_comfyui(host, port, count, settings))


def _folder_file(text: str) -> tuple[str, str]:
    folder, sep, file = text.partition("=")
    if not sep or not folder or not file:
        raise argparse.ArgumentTypeError(f"{text!r} is not FOLDER=FILE (e.g. loras=x.safetensors)")
    return folder, file


def _by_folder(pairs: list[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    folders: dict[str, list[str]] = {}
    for folder, file in pairs:
        folders.setdefault(folder, []).append(file)
    return {folder: tuple(files) for folder, files in folders.items()}


DESCRIPTION = (
    "Serve fake ComfyUI instances on consecutive ports (ComfyUI's HTTP and WebSocket API, "
    "steered by the FakeWork node) until SIGINT or SIGTERM."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fleetq fake-comfyui`` and ``python -m supervisor.sim.comfyui``."""
    parser.description = textwrap.fill(DESCRIPTION, 78)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=8188, help="first port (default 8188)")
    parser.add_argument(
        "--count",
        type=positive_int,
        default=1,
        metavar="N",
        help="instances on consecutive ports (default 1)",
    )
    parser.add_argument(
        "--history-delay",
        type=seconds,
        default=0.0,
        metavar="S",
        help="delay the history write after the terminal event (default 0)",
    )
    parser.add_argument("--no-cache", action="store_true", help="like ComfyUI --cache-none")
    parser.add_argument(
        "--preview-method",
        choices=PREVIEW_METHODS,
        default="none",
        help="like ComfyUI --preview-method: other than none, samplers send live previews",
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
        "--checkpoint",
        action="append",
        default=[],
        metavar="NAME",
        help="a checkpoint file name to offer (repeatable; default none, so "
        "CheckpointLoaderSimple workflows fail validation)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        type=_folder_file,
        metavar="FOLDER=FILE",
        help="a model file to offer, e.g. loras=detail.safetensors (repeatable)",
    )
    parser.add_argument(
        "--node",
        action="append",
        default=None,
        metavar="CLASS",
        help="offer only these node classes (repeatable; default: every class the fake knows)",
    )
    parser.add_argument(
        "--custom-node",
        action="append",
        default=[],
        metavar="CLASS",
        help="an extra pass-through node class standing in for a custom node (repeatable)",
    )
    parser.add_argument(
        "--model-load-seconds",
        type=seconds,
        default=0.0,
        metavar="S",
        help="time to load a checkpoint: at its first use and after another one (default 0)",
    )
    parser.add_argument(
        "--base-dir",
        default=None,
        metavar="DIR",
        help="folder for output/input/temp (default: a temporary folder)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log verbosity (default INFO)",
    )


def build_parser(prog: str = "python -m supervisor.sim.comfyui") -> argparse.ArgumentParser:
    parser = CliParser(prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Serve with parsed options until SIGINT or SIGTERM; returns the exit code."""
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    run_fake_comfyui(
        args.host,
        args.port,
        args.count,
        history_delay_s=args.history_delay,
        caching=not args.no_cache,
        preview_method=args.preview_method,
        startup_delay_s=args.startup_delay,
        startup_mode=args.startup_mode,
        checkpoints=tuple(args.checkpoint),
        base_dir=args.base_dir,
        models=_by_folder(args.model),
        nodes=None if args.node is None else tuple(args.node),
        custom_nodes=tuple(args.custom_node),
        model_load_s=args.model_load_seconds,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m supervisor.sim.comfyui --port 8188 --count 4``; returns the exit code."""
    return run(build_parser().parse_args(argv))
