"""What every ``fleetq`` parser shares: how a usage error reads, the shared option groups, and
argument types that take ASCII numbers only.

A usage error (an unknown option, a missing or malformed argument) prints one line naming the
command and its ``--help``, and exits 2; a user error found later (no such job, Redis down)
prints one line and exits 1 (``fleetq.cli.main``).
"""

from __future__ import annotations

import argparse
import math
import re
from typing import NoReturn

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line: ``PROG: error: MESSAGE``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def ascii_int(raw: str) -> int:
    """An integer in ASCII digits (``int()`` also takes other scripts' digits and ``1_000``)."""
    if not _INT.fullmatch(raw):
        raise argparse.ArgumentTypeError(f"not an integer: {raw!r}")
    return int(raw)


def non_negative_int(raw: str) -> int:
    value = ascii_int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def positive_int(raw: str) -> int:
    value = ascii_int(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def port(raw: str) -> int:
    value = ascii_int(raw)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, not {value}")
    return value


def seconds(raw: str) -> float:
    """A finite number of seconds, 0 or more, in ASCII digits (no ``nan``, no ``inf``)."""
    if not _FLOAT.fullmatch(raw):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}")
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}")
    return value


def index_list(raw: str) -> list[int]:
    """``0,1,2``: GPU indices."""
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts or not all(part.isascii() and part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"takes indices like 0,1,2, not {raw!r}")
    return [int(part) for part in parts]


def connection_options() -> argparse.ArgumentParser:
    """``--redis``, ``--namespace``, ``--output-store``: for every command that talks to a fleet."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--redis",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="Redis URL: redis://, rediss://, unix:// or redis+sentinel:// "
        "(default $FLEETQ_REDIS_URL or redis://127.0.0.1:6379/0)",
    )
    options.add_argument(
        "--namespace",
        metavar="NS",
        default=argparse.SUPPRESS,
        help="fleet namespace (default $FLEETQ_NAMESPACE or fleetq)",
    )
    options.add_argument(
        "--output-store",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="where outputs are kept: redis, file:///folder or s3://bucket/prefix "
        "(default $FLEETQ_OUTPUT_STORE or redis)",
    )
    return options


def output_options() -> argparse.ArgumentParser:
    """``--json``: for every command that prints a result."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON"
    )
    return options
