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
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fleetq.cli.parsing import CliParser, connection_options
from fleetq.config import Settings
from fleetq.errors import FleetqError
from fleetq.fields import add_flags, options_of

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
  fleetq supervisor --simulate-gpus 4 --backend comfyui=http://127.0.0.1:{port:8188}
  fleetq supervisor --backend sdxl:comfyui=http://127.0.0.1:{port:8188} --label gpu=h100"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The supervisor's own options (``--redis`` and ``--namespace`` come from the caller),
    derived from the fields of :class:`supervisor.config.SupervisorConfig`."""
    from supervisor.config import SupervisorConfig

    p.description = textwrap.fill(DESCRIPTION, 78)
    p.epilog = EXAMPLES
    p.add_argument("--config", metavar="FILE", help="TOML configuration (flags win over it)")
    add_flags(p, SupervisorConfig)
    p.add_argument(
        "--backend-option",
        action="append",
        default=[],
        dest="backend_options",
        metavar="SERVICE.NAME=VALUE",
        help="set an adapter option of a service, e.g. comfyui.request_timeout_s=20 or "
        "a1111.keep_extras=true (repeatable; TOML: [backends.SERVICE])",
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
        redis_url=getattr(args, "redis", None),
        namespace=getattr(args, "namespace", None),
        output_store=getattr(args, "output_store", None),
    )
    return run(args, base)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the supervisor with parsed options until SIGTERM; returns the exit code."""
    from supervisor.config import SupervisorConfig, load_config
    from supervisor.gpu.errors import NvmlUnavailableError

    flags = {o.name: getattr(args, o.name) for o in options_of(SupervisorConfig) if o.flag}
    try:
        config = load_config(
            settings,
            config_file=args.config,
            redis_url=getattr(args, "redis", None),
            namespace=getattr(args, "namespace", None),
            output_store=getattr(args, "output_store", None),
            backend_options=args.backend_options,
            **flags,
        )
        logging.basicConfig(
            level=config.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            force=True,
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
