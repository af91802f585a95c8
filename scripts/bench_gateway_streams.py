"""Gateway benchmark: open event streams cost the other routes nothing.

Starts a private ``redis-server`` (:class:`fleetq.demo.embedded.RedisServer`) and a gateway process
(``run_gateway`` on a free loopback port), then for each stream count (default 0, 100, 500 and
1,000 open ``GET /v1/events``, plain sockets from this process) measures:

* ``/v1/stats`` latency over ``--requests`` sequential requests on one keep-alive connection
  (median, p95, max), with one job queued;
* fan-out: from a submit to the moment every open stream has received its ``submitted`` event
  (median over 5 submits);
* Redis clients of the gateway (``connected_clients`` of the private server, minus this
  process's own) and how many of them block (``blocked_clients``);
* the gateway's RSS (psutil).

Prints a markdown table.

    .venv/bin/python scripts/bench_gateway_streams.py                    # ~10 s
    .venv/bin/python scripts/bench_gateway_streams.py --streams 0 20 --requests 20   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fleetq.demo.embedded import RedisServer  # noqa: E402

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.seen = reader, writer, b""

    @classmethod
    async def open(cls, port: int) -> Stream:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"a stream was refused: {head!r}")
        return cls(reader, writer)

    async def wait_for(self, fragment: bytes) -> None:
        while fragment not in self.seen:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise SystemExit("a stream ended")
            self.seen += chunk
        self.seen = b""


def start_gateway(redis_url: str, port: int, max_streams: int) -> subprocess.Popen[bytes]:
    code = (
        "from fleetq import Settings\n"
        "from fleetq.gateway.main import run_gateway\n"
        "from fleetq.gateway.options import GatewayOptions\n"
        f"options = GatewayOptions(max_streams={max_streams}, "
        f"max_connections={max_streams + 100})\n"
        f"run_gateway(Settings(redis_url={redis_url!r}, namespace='bench'), '127.0.0.1', {port},"
        " [], options=options)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL)


async def wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(base + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the gateway did not start")
            await asyncio.sleep(0.05)


async def measure(
    base: str, port: int, redis: aioredis.Redis, gateway: psutil.Process, count: int, requests: int
) -> dict[str, float]:
    streams: list[Stream] = []
    started = time.perf_counter()
    for first in range(0, count, 50):
        streams += await asyncio.gather(*(Stream.open(port) for _ in range(min(50, count - first))))
    open_s = time.perf_counter() - started
    try:
        # The reader re-arms its blocking read every second: take the most of a few samples.
        samples = [await redis.info("clients") for _ in range(10)]
        info = max(samples, key=lambda sample: int(sample["blocked_clients"]))
        async with aiohttp.ClientSession(base) as session:
            times = []
            for _ in range(requests):
                t0 = time.perf_counter()
                async with session.get("/v1/stats") as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                times.append(time.perf_counter() - t0)
            fanout = []
            for _ in range(5):
                t0 = time.perf_counter()
                async with session.post("/v1/jobs", json={"workflow": GRAPH}) as r:
                    job_id = (await r.json())["id"]
                await asyncio.gather(*(s.wait_for(job_id.encode()) for s in streams))
                fanout.append(time.perf_counter() - t0)
        times.sort()
        return {
            "streams": count,
            "open_s": open_s,
            "p50_ms": statistics.median(times) * 1000,
            "p95_ms": times[int(len(times) * 0.95) - 1] * 1000,
            "max_ms": times[-1] * 1000,
            "fanout_ms": statistics.median(fanout) * 1000,
            "clients": int(info["connected_clients"]) - 1,  # this process's own connection
            "blocked": int(info["blocked_clients"]),
            "rss_mib": gateway.memory_info().rss / 2**20,
        }
    finally:
        for s in streams:
            s.writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[0, 100, 500, 1000])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with RedisServer() as server:
        port = free_port()
        proc = start_gateway(server.url, port, max(args.streams))
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_until_up(base)
            redis = aioredis.Redis.from_url(server.url)
            rows = []
            for count in args.streams:
                rows.append(
                    await measure(base, port, redis, psutil.Process(proc.pid), count, args.requests)
                )
            await redis.aclose()
        finally:
            proc.terminate()
            proc.wait(15)
    print("## Gateway event streams (scripts/bench_gateway_streams.py)\n")
    machine = platform.processor() or platform.machine()
    print(
        f"{machine}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        "client and gateway on the same machine.\n"
    )
    print(
        "| open streams | open all (s) | /v1/stats p50 (ms) | p95 (ms) | max (ms) "
        "| submit to every stream (ms) | gateway Redis clients | blocked | gateway RSS (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['streams']:,} | {r['open_s']:.2f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} "
            f"| {r['max_ms']:.1f} | {r['fanout_ms']:.1f} | {r['clients']:.0f} | {r['blocked']:.0f} "
            f"| {r['rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
