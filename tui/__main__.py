"""``python -m tui [--redis URL] [--namespace NS] [--readonly]``: open the dashboard."""

from __future__ import annotations

import argparse
import sys

from fleetq import FleetqError, Settings
from tui.app import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tui", description=__doc__)
    parser.add_argument("--redis", metavar="URL", help="Redis URL (FLEETQ_REDIS_URL)")
    parser.add_argument("--namespace", metavar="NS", help="fleet namespace (FLEETQ_NAMESPACE)")
    parser.add_argument("--readonly", action="store_true", help="watch only: no actions")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(redis_url=args.redis, namespace=args.namespace)
    except FleetqError as e:
        print(f"fleetq tui: {e}", file=sys.stderr)
        return 2
    return run(settings, readonly=args.readonly)


if __name__ == "__main__":
    sys.exit(main())
