"""Sub-commands implemented outside the core (supervisor, dashboard, fake backends, demo,
gateway). Their packages are imported here, lazily, inside the command, so importing
``fleetq`` never loads Textual, NVML or the supervisor."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from fleetq.config import Settings


def _supervisor(args: argparse.Namespace, settings: Settings) -> int:
    from supervisor.cli import main as supervisor_main

    return supervisor_main(args.rest, settings)


def _tui(args: argparse.Namespace, settings: Settings) -> int:
    from tui.app import run

    return run(settings, readonly=args.readonly)


def _fake_comfyui(args: argparse.Namespace, settings: Settings) -> int:
    from supervisor.fakes.comfyui import main as fake_main

    return int(fake_main(args.rest) or 0)


def _fake_a1111(args: argparse.Namespace, settings: Settings) -> int:
    from supervisor.fakes.a1111 import main as fake_main

    return int(fake_main(args.rest) or 0)


DELEGATED = ("supervisor", "fake-comfyui", "fake-a1111")


def split_delegated(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``argv`` after a delegated command name: what follows belongs to that command's
    own parser (argparse cannot pass ``--options`` through a sub-parser untouched)."""
    args = list(argv)
    i = 0
    while i < len(args):
        token = args[i]
        if token in ("--redis", "--namespace"):
            i += 2
            continue
        if token.startswith("-"):
            i += 1
            continue
        if token in DELEGATED:
            return args[: i + 1], args[i + 1 :]
        break
    return args, []


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    from fleetq.demo.run import add_demo_parser
    from fleetq.gateway.cli import add_gateway_parser

    add_demo_parser(sub, common)
    add_gateway_parser(sub, common)
    p = sub.add_parser("tui", parents=[common], help="open the operator dashboard")
    p.add_argument("--readonly", action="store_true", help="watch only: no actions")
    p.set_defaults(delegate=_tui)

    for name, handler, text in (
        ("supervisor", _supervisor, "run the supervisor of this GPU machine"),
        ("fake-comfyui", _fake_comfyui, "run fake ComfyUI servers (tests, demo)"),
        ("fake-a1111", _fake_a1111, "run fake A1111 servers (tests, demo)"),
    ):
        # Everything after the command name is theirs; options before it set the defaults.
        p = sub.add_parser(name, help=text, add_help=False)
        p.set_defaults(delegate=handler, rest=[])
