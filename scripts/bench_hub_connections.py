"""Hub connections: what idle supervisors cost the Redis hub, and how fast they still wake.

One run starts a private ``redis-server`` (:class:`fleetq.demo.embedded.RedisServer`, loopback, AOF
and RDB off) and, for each layout (1 supervisor with 1, 8 and 64 simulated GPUs; 10 supervisors
with 8 each), starts the real supervisors in this process with an instant in-memory backend per GPU
(no HTTP: the backend answers the gate's probe at once and completes a job when it starts). Once
every puller is idle it reads ``INFO clients`` and ``INFO memory`` (connected clients and hub
memory above the empty server, the benchmark's own named connection left out), then measures the
wake-up latency: from just before a submit to the moment a backend starts the job, one job at a
time, each submitted once every puller is idle again.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_hub_connections.py            # about a minute
    .venv/bin/python scripts/bench_hub_connections.py --samples 20 --layouts 1x8
    .venv/bin/python scripts/bench_hub_connections.py --write    # also update docs/BENCHMARKS.md

To measure another checkout, copy this script into its ``scripts/`` and run it from there (it
imports fleetq and the supervisor from the checkout it sits in). The markdown goes to stdout;
``--write`` replaces the section "Hub connections" of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout first, also when another one is installed

import redis.asyncio as aioredis  # noqa: E402

from fleetq import AsyncClient, Settings  # noqa: E402
from fleetq.demo.embedded import RedisServer  # noqa: E402
from fleetq.scripts import SCRIPT_NAMES, script_source  # noqa: E402
from supervisor.app import Supervisor  # noqa: E402
from supervisor.backends.base import (  # noqa: E402
    BackendProbe,
    BackendResult,
    PreviewSink,
    ProgressSink,
)
from supervisor.config import BackendSpec, SupervisorConfig  # noqa: E402

DOC = ROOT / "docs" / "BENCHMARKS.md"
HEADING = "## Hub connections (scripts/bench_hub_connections.py)"
SERVICE = "comfyui"
WORKFLOW = {"1": {"class_type": "KSampler", "inputs": {}}}
LAYOUTS = {"1x1": (1, 1), "1x8": (1, 8), "1x64": (1, 64), "10x8": (10, 8)}


class InstantBackend:
    """A backend that is always ready and finishes a job the moment it starts it."""

    def __init__(self, service: str, url: str, started: dict[str, float]) -> None:
        self.service, self.url, self._started = service, url, started

    async def probe(self) -> BackendProbe:
        return BackendProbe(alive=True, idle=True)

    async def run(
        self,
        job_id: str,
        workflow: Mapping[str, Any],
        progress: ProgressSink,
        inputs: Mapping[str, bytes] | None = None,
        *,
        preview: PreviewSink | None = None,
    ) -> BackendResult:
        self._started[job_id] = time.perf_counter()
        return BackendResult(outputs=())

    async def clear(self) -> None:
        return None

    async def interrupt(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


@dataclass
class Row:
    layout: str
    supervisors: int
    gpus: int
    clients: int
    memory_kb: float
    latencies_ms: list[float]

    def markdown(self) -> str:
        lat = sorted(self.latencies_ms)
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        per_gpu = self.clients / (self.supervisors * self.gpus)
        return (
            f"| {self.supervisors} | {self.gpus} | {self.clients} | "
            f"{self.clients / self.supervisors:.1f} | {per_gpu:.2f} | "
            f"{self.memory_kb:,.0f} | {len(lat)} | {p50:.2f} | {p99:.2f} | {lat[-1]:.2f} |"
        )


async def _info(raw: aioredis.Redis) -> tuple[int, int]:
    """Connections other than the benchmark's own (named) ones, and the hub's memory."""
    clients = sum(1 for c in await raw.client_list() if c.get("name") != "bench")
    memory = await raw.info("memory")
    return clients, int(memory["used_memory"])


async def measure(url: str, layout: str, samples: int) -> Row:
    supervisors_n, gpus = LAYOUTS[layout]
    settings = Settings(redis_url=url, namespace=f"hub-{layout}")
    raw = aioredis.Redis.from_url(url + "?client_name=bench")
    await raw.flushall()
    for name in SCRIPT_NAMES:  # the script cache is the hub's, whatever the connections
        await raw.script_load(script_source(name))
    _, base_memory = await _info(raw)
    started: dict[str, float] = {}
    sups = [
        Supervisor(
            SupervisorConfig(
                settings=settings,
                host_id=f"hub-{i}",
                backends=(BackendSpec(SERVICE, "http://127.0.0.1:{port:1}"),),
                simulate_gpus=gpus,
            ),
            backend_factory=lambda service, url: InstantBackend(service, url, started),
        )
        for i in range(supervisors_n)
    ]
    tasks = [asyncio.create_task(s.run()) for s in sups]
    client = AsyncClient(settings.with_overrides(redis_url=url + "?client_name=bench"))
    try:
        await asyncio.gather(*(s.ready.wait() for s in sups))

        async def all_idle() -> None:
            while not all(p.state.status == "idle" for s in sups for p in s.pullers.values()):  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # the pullers' own state, read in this process
            await asyncio.sleep(0.05)  # the wait after "idle" reaches Redis

        await all_idle()
        await asyncio.sleep(1.5)  # a publish and a reap pass have run
        clients, memory = await _info(raw)
        latencies: list[float] = []
        for _ in range(samples):
            await all_idle()
            t0 = time.perf_counter()
            job = await client.submit(WORKFLOW, service=SERVICE)
            await job.wait(timeout_s=30)
            latencies.append((started[job.id] - t0) * 1000)
        return Row(layout, supervisors_n, gpus, clients, (memory - base_memory) / 1024, latencies)
    finally:
        for s in sups:
            s.request_stop()
            s.request_stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
        await raw.aclose()


def git_commit() -> str:
    with contextlib.suppress(Exception):
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip()
    return "unknown"


def markdown(rows: Sequence[Row], samples: int) -> str:
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        HEADING,
        "",
        f"Measured {when} at commit {git_commit()} on {os.cpu_count()} CPUs (shared), "
        f"Python {sys.version.split()[0]}, one private redis-server on loopback.",
        "",
        "Reproduce: `.venv/bin/python scripts/bench_hub_connections.py --write`",
        "",
        "Idle supervisors (every puller waiting for work); clients and memory are the hub's "
        "(`CLIENT LIST` without the benchmark's own named connections; `INFO memory` used_memory "
        "above the empty server with the scripts loaded: client buffers and fleet records). "
        "Wake-up: from just before a submit to the "
        f"backend starting the job, {samples} jobs one at a time.",
        "",
        "| supervisors | GPUs each | Redis clients | per machine | per GPU | hub memory KiB "
        "| wake-ups | p50 ms | p99 ms | max ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(row.markdown() for row in rows),
    ]
    return "\n".join(lines) + "\n"


def write_doc(section: str) -> None:
    text = DOC.read_text()
    start = text.find(HEADING)
    if start < 0:
        DOC.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find("\n## ", start + len(HEADING))
    rest = text[end + 1 :] if end >= 0 else ""
    DOC.write_text(text[:start] + section + ("\n" + rest if rest else ""))


async def main_async(layouts: Sequence[str], samples: int) -> list[Row]:
    with RedisServer() as server:
        # A first run grows the server's one-off structures (the Lua VM, dictionaries):
        # measured and dropped, so every row counts the same things.
        await measure(server.url, "1x1", 3)
        rows = []
        for layout in layouts:
            rows.append(await measure(server.url, layout, samples))
            print(rows[-1].markdown(), file=sys.stderr)
        return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated, e.g. 1x8")
    p.add_argument("--samples", type=int, default=50, help="wake-ups per layout (default 50)")
    p.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    rows = asyncio.run(main_async(args.layouts.split(","), args.samples))
    section = markdown(rows, args.samples)
    print(section)
    if args.write:
        write_doc(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
