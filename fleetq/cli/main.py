"""``fleetq``: the command line entry point.

One parser tree: every sub-command is a sub-parser of ``fleetq``'s parser. The commands that
talk to a fleet take ``--redis`` and ``--namespace`` (before or after their name); the ones
that print a result also take ``--json``. A usage error prints one line (``fleetq stats:
error: ... (see fleetq stats --help)``) and exits 2; a user error found while running (no such
job, Redis down) prints one line (``fleetq: error: ...``) and exits 1. No traceback is shown for
anything a user can cause; set ``FLEETQ_DEBUG=1`` to see them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from fleetq import __version__
from fleetq.cli import commands, dispatch
from fleetq.cli.parsing import CliParser, connection_options, output_options
from fleetq.client import Client
from fleetq.config import Settings
from fleetq.errors import FleetqError

#: Options of the top-level parser that only some sub-commands take.
SHARED = ("redis", "namespace", "output_store", "json")


def common_options() -> argparse.ArgumentParser:
    """``--redis``, ``--namespace``, ``--output-store`` and ``--json`` in one parent parser."""
    return argparse.ArgumentParser(add_help=False, parents=[connection_options(), output_options()])


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole ``fleetq`` parser tree. ``command``: the sub-command about to run, so that
    only its package is imported; None builds every sub-command (help pages, tests)."""
    connection, output = connection_options(), output_options()
    parser = CliParser(
        prog="fleetq",
        description="One Redis queue in front of a fleet of ComfyUI / A1111 GPU machines.",
        epilog="Run 'fleetq COMMAND --help' for a command's options.",
        parents=[connection, output],
    )
    parser.add_argument("--version", action="version", version=f"fleetq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    commands.add_parsers(sub, [connection, output])
    dispatch.add_parsers(sub, connection, command)
    return parser


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[command]
            return sub
    raise LookupError(command)


def _takes(command: argparse.ArgumentParser) -> set[str]:
    """The shared options (:data:`SHARED`) that a sub-command accepts."""
    return {a.dest for a in command._actions if a.dest in SHARED}


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; a shared option given before a command that has no use for it (``fleetq
    --json demo``) is a usage error, like after it."""
    parser = build_parser(dispatch.command_name(argv))
    args, extras = parser.parse_known_args(list(argv))
    command = _subparser(parser, args.command)
    if extras:
        command.error(f"unrecognized arguments: {' '.join(extras)}")
    unused = [f"--{name}" for name in SHARED if hasattr(args, name)]
    unused = [option for option in unused if option[2:] not in _takes(command)]
    if unused:
        command.error(f"unrecognized arguments: {' '.join(unused)}")
    if not hasattr(args, "json"):
        args.json = False
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        redis_url=getattr(args, "redis", None),
        namespace=getattr(args, "namespace", None),
        output_store=getattr(args, "output_store", None),
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    missing = dispatch.missing_extra(dispatch.command_name(argv))
    if missing is not None:  # before parsing: the command's options come with its extra
        print(f"fleetq: error: {missing}", file=sys.stderr)
        return 1
    args = parse(argv)
    logging.basicConfig(
        level=os.environ.get("FLEETQ_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if getattr(args, "delegate", None) is not None:
            return int(args.delegate(args, settings_from(args)))
        with Client(settings_from(args)) as client:
            return int(args.handler(client, args))
    except FleetqError as e:
        if os.environ.get("FLEETQ_DEBUG") == "1":
            raise
        print(f"fleetq: error: {e}", file=sys.stderr)
        return 1
    except TimeoutError as e:  # --wait-timeout passed; the job goes on
        print(f"fleetq: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fleetq: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
