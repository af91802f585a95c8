"""Sub-commands implemented outside the core (supervisor, dashboard, fake backends, demo,
gateway). They are sub-parsers of the one ``fleetq`` parser tree, but their packages are
imported only when that command is the one being run (or the whole tree is built, for
``--help`` pages and tests), so ``fleetq stats`` never loads Textual, NVML or the supervisor.

Their libraries come with fleetq's extras (``pip install 'fleetq[tui]'``): a command whose extra
is not installed says which one to install instead of failing with an ImportError."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Sequence
from typing import Any

from fleetq.config import Settings


def _supervisor(args: argparse.Namespace, settings: Settings) -> int:
    from supervisor.cli import run

    return run(args, settings)


def _tui(args: argparse.Namespace, settings: Settings) -> int:
    from tui.app import run

    return run(settings, readonly=args.readonly)


def _fake_comfyui(args: argparse.Namespace, settings: Settings) -> int:
    from supervisor.sim.comfyui.cli import run

    return run(args)


def _fake_a1111(args: argparse.Namespace, settings: Settings) -> int:
    from supervisor.sim.a1111.cli import run

    return run(args)


#: The extra each command needs, and the modules of that extra it imports (their presence is
#: checked without importing them; nvidia-ml-py is left out: a supervisor that simulates its GPUs
#: runs without it, and one that does not says so when NVML cannot be loaded).
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "supervisor": ("supervisor", ("aiohttp", "prometheus_client")),
    "fake-comfyui": ("supervisor", ("aiohttp",)),
    "fake-a1111": ("supervisor", ("aiohttp",)),
    "tui": ("tui", ("textual",)),
    "gateway": ("gateway", ("aiohttp", "prometheus_client")),
    "demo": ("demo", ("aiohttp", "prometheus_client", "textual")),
}


def missing_extra(command: str | None) -> str | None:
    """Why ``command`` cannot run in this installation (its extra is missing), or None."""
    if command not in EXTRAS:
        return None
    extra, modules = EXTRAS[command]
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (
        f"'fleetq {command}' needs fleetq's {extra} extra, which is not installed (missing: "
        f"{', '.join(missing)}): pip install 'fleetq[{extra}]'"
    )


#: Commands whose options live in another package (added to the tree only when needed).
EXTERNAL = ("supervisor", "fake-comfyui", "fake-a1111")
#: Top-level options that take a value (skipped when looking for the command's name).
VALUED_OPTIONS = ("--redis", "--namespace", "--output-store")


def command_name(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names (the first word that is not an option or its value)."""
    args = list(argv)
    i = 0
    while i < len(args):
        token = args[i]
        if token in VALUED_OPTIONS:
            i += 2
            continue
        if token.startswith("-"):
            i += 1
            continue
        return token
    return None


def _external_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "supervisor":
        from supervisor.cli import add_arguments as add_supervisor_arguments

        add_supervisor_arguments(parser)
    elif name == "fake-comfyui":
        from supervisor.sim.comfyui.cli import add_arguments as add_comfyui_arguments

        add_comfyui_arguments(parser)
    else:
        from supervisor.sim.a1111.cli import add_arguments as add_a1111_arguments

        add_a1111_arguments(parser)


def add_parsers(sub: Any, connection: argparse.ArgumentParser, load: str | None) -> None:
    """Register the commands that live outside the core. ``load``: the command being run
    (its package's options are loaded), or None to load every one."""
    from fleetq.demo.run import add_demo_parser
    from fleetq.gateway.cli import add_gateway_parser

    add_demo_parser(sub)
    add_gateway_parser(sub, connection)
    p = sub.add_parser(
        "tui",
        parents=[connection],
        help="open the operator dashboard",
        description="The operator dashboard: queues, jobs and every GPU of the fleet, with "
        "actions (cancel, bump, retry, pause, drain). See docs/TUI.md.",
    )
    p.add_argument("--readonly", action="store_true", help="watch only: no actions")
    p.set_defaults(delegate=_tui)

    for name, handler, parents, text in (
        ("supervisor", _supervisor, [connection], "run the supervisor of this GPU machine"),
        ("fake-comfyui", _fake_comfyui, [], "run fake ComfyUI servers (tests, demo)"),
        ("fake-a1111", _fake_a1111, [], "run fake A1111 servers (tests, demo)"),
    ):
        # Description and options come with the command's package (see _external_arguments).
        p = sub.add_parser(
            name, parents=parents, help=text, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        # The whole tree (help pages) leaves out the options of a command that cannot run here.
        if load == name or (load is None and missing_extra(name) is None):
            _external_arguments(name, p)
        p.set_defaults(delegate=handler)
