"""Claim cost with requirement classes: how a claim scales with the classes a GPU serves, and
that it does not scale with the jobs queued.

One run starts a private ``redis-server`` (:class:`fleetq.demo.embedded.RedisServer`, loopback) and,
for each configuration, flushes it, submits the queued jobs spread evenly over C requirement
classes (one checkpoint per class), and times claims made through the worker API
(``WorkerQueue.try_claim``, one connection, as a puller makes them) by a GPU that serves all C
classes, and by one that serves a single class of the C. Two figures per claim: the round trip
seen by the claimer (p50, p95) and the server time of the claim script (``INFO commandstats``,
``evalsha`` microseconds per call, the other scripts' calls excluded by running nothing else).

Usage (from the repository root)::

    .venv/bin/python scripts/bench_claim_classes.py            # full run, about a minute
    .venv/bin/python scripts/bench_claim_classes.py --quick    # smoke run, seconds
    .venv/bin/python scripts/bench_claim_classes.py --write    # also update docs/BENCHMARKS.md

The markdown goes to stdout; ``--write`` replaces the section "Claim with requirement classes"
of docs/BENCHMARKS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # run as a script from a checkout (HERE holds the fleetbench harness)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import redis  # noqa: E402
from fleetbench.docs import command_line, write_doc  # noqa: E402
from fleetbench.machine import machine_facts  # noqa: E402

from fleetq import AsyncClient, Settings  # noqa: E402
from fleetq.classes import ServiceScope  # noqa: E402
from fleetq.demo.embedded import RedisServer  # noqa: E402
from fleetq.requirements import derive  # noqa: E402
from fleetq.worker import WorkerQueue  # noqa: E402

HEADING = "## Claim with requirement classes (scripts/bench_claim_classes.py)"
SERVICE = "comfyui"
NAMESPACE = "benchclasses"


@dataclass(frozen=True)
class Row:
    classes: int
    queued: int
    served: int
    claims: int
    p50_ms: float
    p95_ms: float
    server_us: float


def graph(checkpoint: int, seed: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple",
              "inputs": {"ckpt_name": f"model-{checkpoint:04d}.safetensors"}},
        "2": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": seed}},
    }  # fmt: skip


async def fill(client: AsyncClient, classes: int, queued: int) -> None:
    """``queued`` jobs over ``classes`` classes, submitted 16 at a time (the pool's size)."""
    batch = 16
    for start in range(0, queued, batch):
        await asyncio.gather(*(
            client.submit(graph(i % classes, i), priority=i % 3)
            for i in range(start, min(queued, start + batch))
        ))  # fmt: skip


def evalsha_stats(r: redis.Redis) -> tuple[int, int]:
    stats = r.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


async def measure(url: str, classes: int, queued: int, claims: int, one_class: bool) -> Row:
    if queued - claims - 1 < classes:
        raise SystemExit(f"--queued {queued} is too few for {classes} classes and {claims} claims")
    r = redis.Redis.from_url(url)
    r.flushall()
    settings = Settings(redis_url=url, namespace=NAMESPACE)
    client = AsyncClient(settings)
    queue = WorkerQueue(settings)
    try:
        await fill(client, classes, queued - claims - 1)
        await fill(client, 1, claims + 1)  # class 0 holds enough for the one-class GPU
        await queue.refresh_classes([SERVICE], force=True)
        full = queue.classes.every_class(SERVICE)
        first = derive(SERVICE, graph(0, 0)).class_id
        scope = ServiceScope(full.version, ((first, False),)) if one_class else full
        scopes = {SERVICE: scope}
        await queue.try_claim([SERVICE], "bench", 0, scopes)  # warm: scripts loaded
        r.config_resetstat()
        times = []
        for _ in range(claims):
            started = time.perf_counter()
            outcome = await queue.try_claim([SERVICE], "bench", 0, scopes)
            times.append((time.perf_counter() - started) * 1000)
            assert outcome.job is not None, "the queue ran dry: raise --queued"
        calls, usec = evalsha_stats(r)
    finally:
        await queue.aclose()
        await client.aclose()
        r.close()
    times.sort()
    return Row(
        classes=classes,
        queued=queued,
        served=1 if one_class else classes,
        claims=claims,
        p50_ms=statistics.median(times),
        p95_ms=times[int(len(times) * 0.95) - 1],
        server_us=usec / max(1, calls),
    )


def report(rows: Sequence[Row], argv: Sequence[str], facts: dict[str, str]) -> str:
    lines = [
        HEADING,
        "",
        "A claim reads the head of each requirement-class queue the GPU serves (one "
        "`ZRANGE 0 0` each) and takes the best; it never scans queued jobs. Claims through "
        "`WorkerQueue.try_claim` on one connection; server time is the claim script's "
        "(`INFO commandstats`, evalsha µs per call). The claim's cost follows the classes the "
        "GPU serves, not the jobs queued nor the classes that exist: compare a GPU serving all "
        "classes with one serving a single class of the same queue.",
        "",
        "| classes | jobs queued | classes the GPU serves | claims | round trip p50 (ms) "
        "| p95 (ms) | server µs per claim |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.classes} | {row.queued:,} | {row.served} | {row.claims} "
            f"| {row.p50_ms:.3f} | {row.p95_ms:.3f} | {row.server_us:.0f} |"
        )
    machine = ", ".join(f"{k} {v}" for k, v in facts.items())
    lines += ["", f"Machine: {machine}.", "", f"Command: `{command_line(argv, Path(__file__))}`"]
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> tuple[list[Row], dict[str, str]]:
    sizes = [(1, args.queued), (50, args.queued), (500, args.queued)]
    if not args.quick:
        sizes.append((500, args.queued * 5))  # the same classes, five times the jobs
    rows = []
    with RedisServer() as server:
        facts = machine_facts(server.port)
        for classes, queued in sizes:
            rows.append(await measure(server.url, classes, queued, args.claims, one_class=False))
            if classes > 1:
                rows.append(await measure(server.url, classes, queued, args.claims, one_class=True))
    return rows, facts


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--queued", type=int, help="jobs queued per configuration (default 10,000)")
    p.add_argument("--claims", type=int, help="claims timed per configuration (default 500)")
    p.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    args.queued = args.queued or (1_000 if args.quick else 10_000)
    args.claims = args.claims or (100 if args.quick else 500)
    rows, facts = asyncio.run(run(args))
    text = report(rows, list(argv if argv is not None else sys.argv[1:]), facts)
    print(text, end="")
    if args.write:
        write_doc(text, HEADING)
    return 0


if __name__ == "__main__":
    sys.exit(main())
