"""``fleetq supervisor``: run the supervisor of this GPU machine.

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
from collections.abc import Sequence

from fleetq.config import Settings
from fleetq.errors import FleetqError
from supervisor.app import Supervisor
from supervisor.config import SupervisorConfig, load_config
from supervisor.gpu.errors import NvmlUnavailableError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetq supervisor", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--config", metavar="FILE", help="TOML configuration (flags win over it)")
    p.add_argument("--redis", metavar="URL", help="Redis URL of the hub")
    p.add_argument("--namespace", help="fleet namespace")
    p.add_argument("--host-id", help="this machine's name in the fleet (default: hostname)")
    p.add_argument("--backend", action="append", default=[], metavar="SERVICE=URL",
                   help="bind a service to a backend URL template: {gpu} is the GPU index, "
                        "{port:BASE} is BASE + index (repeatable)")  # fmt: skip
    p.add_argument("--simulate-gpus", type=int, metavar="N",
                   help="run with N simulated GPUs instead of NVML (demo, tests)")  # fmt: skip
    p.add_argument("--gpus", metavar="LIST", help="only these GPU indices, e.g. 0,1,2")
    p.add_argument("--grace-s", type=float, help="on SIGTERM, time for running jobs (default 60)")
    p.add_argument("--min-free-mb", type=int, help="free GPU memory needed to claim (MiB)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--log-level", default=os.environ.get("FLEETQ_LOG_LEVEL", "INFO"))
    return p


def main(argv: Sequence[str], settings: Settings | None = None) -> int:
    """Entry point of ``fleetq supervisor``; returns the exit code."""
    args = build_parser().parse_args(list(argv))
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    try:
        indices = None if not args.gpus else [int(i) for i in args.gpus.split(",") if i.strip()]
    except ValueError:
        print(f"fleetq supervisor: error: --gpus takes indices like 0,1,2, not {args.gpus!r}",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        config = load_config(
            settings or Settings.from_env(),
            config_file=args.config,
            redis_url=args.redis,
            namespace=args.namespace,
            host_id=args.host_id,
            backends=args.backend,
            simulate_gpus=args.simulate_gpus,
            gpu_indices=indices,
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
    supervisor = Supervisor(config)
    supervisor.install_signal_handlers()
    return await supervisor.run()
