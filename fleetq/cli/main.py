"""``fleetq``: the command line entry point.

User errors print one line (``fleetq: error: ...``) and exit 1; usage errors exit 2; no
traceback is shown for anything a user can cause. Set ``FLEETQ_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from fleetq import __version__
from fleetq.cli import commands, dispatch
from fleetq.client import Client
from fleetq.config import Settings
from fleetq.errors import FleetqError


def common_options() -> argparse.ArgumentParser:
    """Options every sub-command takes, before or after its name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--redis",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="Redis URL (default $FLEETQ_REDIS_URL or redis://127.0.0.1:6379/0)",
    )
    common.add_argument(
        "--namespace",
        default=argparse.SUPPRESS,
        help="fleet namespace (default $FLEETQ_NAMESPACE or fleetq)",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output")  # fmt: skip
    return common


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="fleetq",
        description="One Redis queue in front of a fleet of ComfyUI / A1111 GPU machines.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"fleetq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    commands.add_parsers(sub, common)
    dispatch.add_parsers(sub, common)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        redis_url=getattr(args, "redis", None), namespace=getattr(args, "namespace", None)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    head, rest = dispatch.split_delegated(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(head)
    if rest:
        args.rest = rest
    if not hasattr(args, "json"):
        args.json = False
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
