"""Output stores: Redis memory per completed job, and the time a large output adds.

One run starts a private ``redis-server`` (no persistence) and moto's standalone S3 server, each
on a free loopback port as its own process, and a temporary folder. For each store (``redis``,
``file://`` folder, ``s3://`` bucket) it completes jobs through the worker API (the calls a
supervisor makes) and reads them back with the client:

- Redis memory per completed job (``INFO used_memory`` delta over the jobs; ``MEMORY USAGE`` of
  each job's keys), with a small and a typical image-sized output, against jobs with no output;
- the time a 10 MiB output takes to store and complete, and to read back (medians).

Usage (from the repository root)::

    .venv/bin/python scripts/bench_outputs.py            # full run, about a minute
    .venv/bin/python scripts/bench_outputs.py --quick    # smoke run, a few seconds
    .venv/bin/python scripts/bench_outputs.py --write    # also update docs/BENCHMARKS.md

The markdown goes to stdout; ``--write`` replaces the section "Output stores" of
docs/BENCHMARKS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # run as a script from a checkout (HERE holds the fleetbench harness)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import botocore.session  # noqa: E402
from fleetbench.docs import command_line, write_doc  # noqa: E402
from fleetbench.machine import machine_facts  # noqa: E402
from fleetbench.outputs.measure import (  # noqa: E402
    MemoryFigures,
    TimeFigures,
    memory_per_job,
    time_large_output,
)
from fleetbench.outputs.report import HEADING, render  # noqa: E402
from fleetbench.processes import Children, free_port, start_redis, wait_for_port  # noqa: E402

from fleetq import Settings  # noqa: E402

MIB = 1024 * 1024
#: Any credentials do for the local S3 server; botocore refuses to sign without some.
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
          "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def start_s3(children: Children) -> str:
    port = free_port()
    children.start("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    wait_for_port(port, 30, children)
    endpoint = f"http://127.0.0.1:{port}"
    client = botocore.session.Session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1"
    )
    client.create_bucket(Bucket="fleetq-bench")
    return endpoint


async def measure(
    base: Settings, stores: dict[str, str], jobs: int, reps: int, sizes: list[int]
) -> tuple[list[MemoryFigures], list[TimeFigures]]:
    memory = [await memory_per_job(base, "redis", "(no output)", 0, jobs)]
    for label, store in stores.items():
        for size in sizes:
            memory.append(await memory_per_job(base, store, label, size, jobs))
    times = [
        await time_large_output(base, store, label, 10 * MIB, reps)
        for label, store in stores.items()
    ]
    return memory, times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few jobs: a smoke run")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    jobs, reps = (5, 2) if args.quick else (100, 9)
    sizes = [64 * 1024, 3 * MIB // 2]
    os.environ.update(S3_ENV)
    children = Children(Path(tempfile.mkdtemp(prefix="fleetq-bench-outputs-")))
    try:
        with tempfile.TemporaryDirectory(prefix="fleetq-outputs-") as folder:
            redis_port = start_redis(children, children.log_dir)
            endpoint = start_s3(children)
            base = Settings(
                redis_url=f"redis://127.0.0.1:{redis_port}/0",
                s3_endpoint_url=endpoint,
                s3_region="us-east-1",
                max_output_bytes=64 * MIB,
            )
            stores = {
                "redis": "redis",
                "file (local disk)": Path(folder).as_uri(),
                "s3 (moto, loopback)": "s3://fleetq-bench/outputs",
            }
            facts = machine_facts(redis_port)
            memory, times = asyncio.run(measure(base, stores, jobs, reps, sizes))
    finally:
        children.stop_all()
    argv_shown = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--write"]
    section = render(memory, times, facts, command_line(argv_shown, Path(__file__)))
    print(section)
    if args.write:
        write_doc(section, HEADING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
