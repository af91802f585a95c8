"""Queue benchmark: fleetq side by side with arq, RQ, saq and BullMQ (Python) on one redis-server.

One run starts one private ``redis-server`` (:class:`fleetq.demo.embedded.RedisServer`, AOF off,
loopback) and measures every system against it, flushing the database between systems:

(a) submit-to-claim latency with one idle worker: the time from just before a submit to the moment
    the worker holds the job (fleetq: ``WorkerQueue.claim`` returns; the others: the job function
    starts). Blocking workers are checked to be blocked (``INFO clients``) before each submit.
(b) no-op throughput: N jobs submitted one at a time (the enqueue rate), then drained by 8
    concurrent workers (submit, claim, complete).
(c) fleetq only: the cost of ``stats()``, ``submit()``, ``job.status()`` and ``jobs(limit=50)``
    with 1,000 and with 1,000,000 jobs queued.

Usage (from the repository root)::

    .venv/bin/pip install arq rq saq bullmq      # the competitors (optional; skipped if missing)
    .venv/bin/python scripts/bench_queue.py                   # full run, several minutes
    .venv/bin/python scripts/bench_queue.py --quick           # smoke run, under a minute
    .venv/bin/python scripts/bench_queue.py --quick --fleetq-only   # fleetq alone, seconds
    .venv/bin/python scripts/bench_queue.py --write           # also update docs/BENCHMARKS.md

The markdown tables go to stdout; ``--write`` replaces the section "Queue core" of
docs/BENCHMARKS.md (other sections are kept). The benchmark itself lives in
``scripts/fleetbench/queue/``; this file is its command line (and its worker processes' entry).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # run as a script from a checkout (HERE holds the fleetbench harness)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fleetbench.docs import command_line, write_doc  # noqa: E402
from fleetbench.queue.measure import measure_scale  # noqa: E402
from fleetbench.queue.phases import machine_facts, run_async_phases  # noqa: E402
from fleetbench.queue.report import Report  # noqa: E402
from fleetbench.queue.sizes import ALL_SYSTEMS, DOC, FULL, HEADING, QUICK, TINY, Sizes, installed  # noqa: E402
from fleetbench.queue.workers import Children, fleetq_worker_main, rq_worker_main  # noqa: E402

from fleetq.demo.embedded import RedisServer  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run under 60 s")
    p.add_argument("--fleetq-only", action="store_true", help="fleetq alone, tiny sizes (< 15 s)")
    p.add_argument("--systems", help=f"comma-separated subset of {','.join(ALL_SYSTEMS)}")
    p.add_argument("--jobs", type=int, help="throughput: jobs per system")
    p.add_argument("--seed-size", type=int, help="(c): the large queue (default 1,000,000)")
    p.add_argument("--latency-samples", type=int, help="latency samples per blocking system")
    p.add_argument("--rounds", type=int, help="throughput rounds (default 3; quick: 1)")
    p.add_argument("--no-scale", action="store_true", help="skip (c), the 1k vs 1M queue")
    p.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    # Internal: the worker processes this script starts.
    p.add_argument("--rq-worker", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--rq-worker-burst", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--fleetq-worker", nargs=2, metavar=("URL", "NS"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.rq_worker:
        rq_worker_main(args.rq_worker, burst=False)
        return 0
    if args.rq_worker_burst:
        rq_worker_main(args.rq_worker_burst, burst=True)
        return 0
    if args.fleetq_worker:
        fleetq_worker_main(*args.fleetq_worker)
        return 0

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # saq warns when the benchmark cancels its idle workers at the end of a phase.
    logging.getLogger("saq").setLevel(logging.ERROR)
    sizes = TINY if args.fleetq_only else QUICK if args.quick else FULL
    overrides = {
        "jobs": args.jobs,
        "seed_size": args.seed_size,
        "latency_samples": args.latency_samples,
        "rounds": args.rounds,
    }
    sizes = Sizes(**{**sizes.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    if sizes.seed_size <= sizes.small_size:
        raise SystemExit(f"--seed-size must be larger than {sizes.small_size}")
    wanted = ("fleetq",) if args.fleetq_only else ALL_SYSTEMS
    if args.systems:
        wanted = tuple(s.strip() for s in args.systems.split(",") if s.strip())
        unknown = set(wanted) - set(ALL_SYSTEMS)
        if unknown:
            raise SystemExit(f"unknown systems: {', '.join(sorted(unknown))}")
    report = Report(
        sizes, command_line([a for a in argv if a not in ("-v", "--verbose")], Path(__file__))
    )
    systems = []
    for name in wanted:
        if name == "fleetq" or installed(name):
            systems.append(name)
        else:
            report.skipped.append(f"{name}: not installed, skipped (`pip install {name}`)")

    def say(message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    server = RedisServer(appendonly=False)
    children = Children()
    started = time.perf_counter()
    try:
        server.start()
        report.facts = machine_facts(server.url, systems)
        asyncio.run(
            run_async_phases(server.url, server.port, systems, sizes, report, children, say)
        )
        if "fleetq" in systems and not args.no_scale:
            say(f"scale: fleetq at {sizes.small_size:,} and {sizes.seed_size:,} queued")
            report.scale, report.scale_facts = measure_scale(server.url, sizes, say)
    finally:
        children.close()
        server.close()
    report.facts["load_after"] = f"{os.getloadavg()[0]:.1f}"
    report.facts["run_s"] = f"{time.perf_counter() - started:.0f}"
    say(f"done in {report.facts['run_s']} s")
    section = report.markdown()
    print(section)
    if args.write:
        write_doc(section, HEADING)
        say(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
