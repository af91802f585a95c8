"""``fleetq supervisor``: run the supervisor of this GPU machine.

Its options are a sub-parser of ``fleetq``'s one parser tree (:func:`add_arguments`);
:func:`main` parses them on their own, for callers that hold an argument list.

Examples::

    fleetq supervisor --backend comfyui=http://127.0.0.1:{port:8188}
    fleetq supervisor --config /etc/fleetq/supervisor.toml
    fleetq supervisor --simulate-gpus 4 --backend comfyui=http://127.0.0.1:{port:8188}
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fleetq.cli.parsing import (
    CliParser,
    connection_options,
    index_list,
    non_negative_int,
    port,
    seconds,
)
from fleetq.config import Settings
from fleetq.errors import FleetqError

if TYPE_CHECKING:
    from supervisor.config import SupervisorConfig

DESCRIPTION = (
    "Run the supervisor of this GPU machine: one puller per GPU claims jobs from the fleet's "
    "Redis while its GPU and backend are healthy. Flags win over the TOML file, which wins over "
    "the environment."
)
EXAMPLES = """examples:
  fleetq supervisor --backend comfyui=http://127.0.0.1:{port:8188}
  fleetq supervisor --config /etc/fleetq/supervisor.toml
  fleetq supervisor --simulate-gpus 4 --backend comfyui=http://127.0.0.1:{port:8188}"""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The supervisor's own options (``--redis`` and ``--namespace`` come from the caller)."""
    p.description = textwrap.fill(DESCRIPTION, 78)
    p.epilog = EXAMPLES
    p.add_argument("--config", metavar="FILE", help="TOML configuration (flags win over it)")
    p.add_argument(
        "--host-id", metavar="NAME", help="this machine's name in the fleet (default: hostname)"
    )
    p.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="bind a service to a backend URL template: {gpu} is the GPU index, "
        "{port:BASE} is BASE + index (repeatable)",
    )
    p.add_argument(
        "--simulate-gpus",
        type=non_negative_int,
        metavar="N",
        help="run with N simulated GPUs instead of NVML (demo, tests)",
    )
    p.add_argument(
        "--gpus",
        type=index_list,
        metavar="LIST",
        help="only these GPU indices, e.g. 0,1,2 (default: all)",
    )
    p.add_argument(
        "--grace-s",
        type=seconds,
        metavar="S",
        help="on SIGTERM, time for running jobs to finish (default 60)",
    )
    p.add_argument(
        "--min-free-mb",
        type=non_negative_int,
        metavar="MIB",
        help="free GPU memory needed to claim (default: no rule)",
    )
    p.add_argument(
        "--metrics-port",
        type=port,
        metavar="PORT",
        help="serve Prometheus metrics on this port (default: off)",
    )
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=os.environ.get("FLEETQ_LOG_LEVEL", "INFO").upper(),
        help="log verbosity (default $FLEETQ_LOG_LEVEL or INFO)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The supervisor's options as a parser of their own (``--redis``, ``--namespace`` too)."""
    p = CliParser(prog="fleetq supervisor", parents=[connection_options()],
                  formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_arguments(p)
    return p


def main(argv: Sequence[str], settings: Settings | None = None) -> int:
    """Parse ``argv`` as ``fleetq supervisor`` does and run; returns the exit code."""
    args = build_parser().parse_args(list(argv))
    base = settings or Settings.from_env(
        redis_url=getattr(args, "redis", None), namespace=getattr(args, "namespace", None)
    )
    return run(args, base)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the supervisor with parsed options until SIGTERM; returns the exit code."""
    from supervisor.config import load_config
    from supervisor.gpu.errors import NvmlUnavailableError

    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    try:
        config = load_config(
            settings,
            config_file=args.config,
            redis_url=getattr(args, "redis", None),
            namespace=getattr(args, "namespace", None),
            host_id=args.host_id,
            backends=args.backend,
            simulate_gpus=args.simulate_gpus,
            gpu_indices=args.gpus,
            grace_s=args.grace_s,
            min_free_mb=args.min_free_mb,
            metrics_port=args.metrics_port,
        )
        return asyncio.run(_serve(config))
    except NvmlUnavailableError as e:
        print(f"fleetq supervisor: refusing to start: {e}. Run on a machine with the NVIDIA "
              "driver, or pass --simulate-gpus N to simulate GPUs.", file=sys.stderr)  # fmt: skip
        return 2
    except FleetqError as e:
        print(f"fleetq supervisor: error: {e}", file=sys.stderr)
        return 1


async def _serve(config: SupervisorConfig) -> int:
    from supervisor.app import Supervisor

    supervisor = Supervisor(config)
    supervisor.install_signal_handlers()
    return await supervisor.run()
