"""The three measurements: (a) latency, (b) throughput, (c) cost at 1k and 1M queued."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from fleetbench.queue import workers
from fleetbench.queue.sizes import PHASE_TIMEOUT_S, SERVICE, WORKFLOW, Sizes
from fleetbench.queue.systems import System
from fleetbench.queue.workers import RQ_MODULE, Children, Probe
from fleetq import Client, Settings
from fleetq.scripts import script_source
from fleetq.store import new_job_id
from fleetq.validation import build_spec

# -- (a) latency ----------------------------------------------------------------------------------


@dataclass
class LatencyRow:
    system: str
    how: str
    samples: list[float] = field(default_factory=list)  # ms
    note: str = ""


async def wait_blocked(monitor: aioredis.Redis, timeout_s: float = 10.0) -> None:
    """Wait until a client is blocked in Redis (the idle worker's blocking pop)."""
    deadline = time.monotonic() + timeout_s
    while int((await monitor.info("clients"))["blocked_clients"]) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("no worker blocked in Redis within the timeout")
        await asyncio.sleep(0.001)


async def measure_latency(
    system: System, samples: int, monitor: aioredis.Redis, blocking: bool, defaults: bool = False
) -> list[float]:
    workers.PROBE = Probe()
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    warmup = 3 if blocking else 1
    await system.open()
    await system.start_workers(1, defaults=defaults)
    out: list[float] = []
    try:
        for i in range(samples + warmup):
            if blocking:
                await wait_blocked(monitor)
            else:  # a polling worker: submit at a random phase of its poll cycle
                await asyncio.sleep(rng.uniform(0.05, 0.55))
            workers.PROBE.waiter = loop.create_future()
            t0 = time.perf_counter_ns()
            await system.enqueue()
            t1 = await asyncio.wait_for(workers.PROBE.waiter, 30)
            if i >= warmup:
                out.append((t1 - t0) / 1e6)
    finally:
        await system.stop_workers()
        await system.close()
    return out


def measure_rq_latency(url: str, children: Children, samples: int) -> list[float]:
    from rq import Queue

    conn = redis.Redis.from_url(url)
    queue = Queue("bench", connection=conn)
    proc = children.spawn("--rq-worker", url)
    assert proc.stdout is not None
    proc.stdout.readline()
    out: list[float] = []
    try:
        for i in range(samples + 3):
            deadline = time.monotonic() + 10
            while int(conn.info("clients")["blocked_clients"]) < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the RQ worker never blocked")
                time.sleep(0.001)
            t0 = time.perf_counter_ns()
            queue.enqueue(f"{RQ_MODULE}.rq_latency_job", t0)
            reply = conn.blpop(["bench:rq:latency"], timeout=30)
            if reply is None:
                raise RuntimeError("the RQ worker did not run the job")
            if i >= 3:
                out.append(int(reply[1]) / 1e6)
    finally:
        proc.terminate()
        conn.close()
    return out


# -- (b) throughput -------------------------------------------------------------------------------


@dataclass
class Run:
    """One pass of one system: seconds to enqueue and to drain, and the CPU seconds used by
    redis-server and by the clients (submitter and workers) over both."""

    enqueue_s: float
    drain_s: float
    redis_cpu_s: float
    client_cpu_s: float


@dataclass
class ThroughputRow:
    system: str
    workers: str
    jobs: int
    runs: list[Run] = field(default_factory=list)

    @property
    def enqueue_rate(self) -> float:
        return statistics.median(self.jobs / r.enqueue_s for r in self.runs)

    @property
    def drain_rates(self) -> list[float]:
        return sorted(self.jobs / r.drain_s for r in self.runs)

    @property
    def drain_rate(self) -> float:
        return statistics.median(self.drain_rates)

    @property
    def redis_us_per_job(self) -> float:
        return statistics.median(r.redis_cpu_s / self.jobs * 1e6 for r in self.runs)

    @property
    def client_us_per_job(self) -> float:
        return statistics.median(r.client_cpu_s / self.jobs * 1e6 for r in self.runs)


def client_cpu_s() -> float:
    """CPU time of this process (all threads); worker processes report their own."""
    return time.process_time()


async def measure_throughput(system: System, jobs: int, concurrency: int) -> tuple[float, float]:
    """Submit ``jobs`` one at a time, then drain them with ``concurrency`` workers."""
    await system.open()
    try:
        t0 = time.perf_counter()
        for _ in range(jobs):
            await system.enqueue()
        enqueue_s = time.perf_counter() - t0
        workers.PROBE = Probe(expected=jobs)
        t0_ns = time.perf_counter_ns()
        await system.start_workers(concurrency)
        try:
            await asyncio.wait_for(workers.PROBE.done.wait(), PHASE_TIMEOUT_S)
        finally:
            await system.stop_workers()
        drain_s = (workers.PROBE.done_ns - t0_ns) / 1e9
    finally:
        await system.close()
    return enqueue_s, drain_s


def rq_enqueue(url: str, jobs: int) -> float:
    from rq import Queue

    conn = redis.Redis.from_url(url)
    try:
        queue = Queue("bench", connection=conn)
        t0 = time.perf_counter()
        for _ in range(jobs):
            queue.enqueue(f"{RQ_MODULE}.rq_noop")
        return time.perf_counter() - t0
    finally:
        conn.close()


def rq_finished(url: str) -> int:
    from rq import Queue
    from rq.registry import FinishedJobRegistry

    conn = redis.Redis.from_url(url)
    try:
        return FinishedJobRegistry(queue=Queue("bench", connection=conn)).count
    finally:
        conn.close()


# -- (c) cost at 1k and 1M queued -----------------------------------------------------------------


@dataclass
class ScaleRow:
    call: str
    small: list[float]  # ms
    large: list[float]


def seed(client: Client, count: int, batch: int = 5_000) -> str:
    """Queue ``count`` tiny jobs fast: the submit script in pipelines. Returns the middle job id."""
    store = client.store
    script = store.redis.register_script(script_source("submit"))
    spec = build_spec(WORKFLOW, client.settings, service=SERVICE)
    middle = ""
    done = 0
    while done < count:
        n = min(batch, count - done)
        pipe = store.redis.pipeline(transaction=False)
        for i in range(n):
            job_id = new_job_id()
            if done + i == count // 2:
                middle = job_id
            call = store.protocol.submit(spec, job_id)
            script(keys=call.keys, args=call.args, client=pipe)
        replies = pipe.execute()
        created = sum(1 for r in replies if r[0] == b"created")
        if created != n:
            raise RuntimeError(f"seeding: {n - created} of {n} submits were not created")
        done += n
    return middle


def time_calls(fn: Callable[[], object], calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def scale_ops(client: Client, job_id: str) -> dict[str, Callable[[], object]]:
    job = client.get(job_id)
    return {
        "stats()": client.stats,
        "submit()": lambda: client.submit(WORKFLOW, service=SERVICE),
        "job.status() (ZRANK)": job.status,
        "jobs(limit=50)": lambda: client.jobs(limit=50),
    }


def measure_scale(
    url: str, sizes: Sizes, say: Callable[[str], None]
) -> tuple[list[ScaleRow], dict[str, Any]]:
    """Two fleets in one Redis, one with a small and one with a large queue, timed in turns.

    Taking turns (rounds of calls, small then large, then large then small) keeps drift on a
    shared machine out of the comparison.
    """
    facts: dict[str, Any] = {}
    small = Client(Settings(redis_url=url, namespace="bench-small"))
    large = Client(Settings(redis_url=url, namespace="bench-large"))
    try:
        memory0 = int(small.store.redis.info("memory")["used_memory"])
        small_mid = seed(small, sizes.small_size)
        t0 = time.perf_counter()
        large_mid = seed(large, sizes.seed_size)
        facts["seed_s"] = time.perf_counter() - t0
        memory = int(small.store.redis.info("memory")["used_memory"]) - memory0
        facts["bytes_per_job"] = memory / (sizes.small_size + sizes.seed_size)
        facts["used_memory"] = memory
        say(f"  seeded {sizes.seed_size:,} jobs in {facts['seed_s']:.1f} s")
        ops = {"small": scale_ops(small, small_mid), "large": scale_ops(large, large_mid)}
        facts["position_large"] = large.status(large_mid).position
        results: dict[str, dict[str, list[float]]] = {"small": {}, "large": {}}
        for which, named in ops.items():  # warm up
            for name, fn in named.items():
                time_calls(fn, 20)
                results[which][name] = []
        rounds = 10
        per_round = max(1, sizes.calls // rounds)
        for r in range(rounds):
            order = ("small", "large") if r % 2 == 0 else ("large", "small")
            for name in ops["small"]:
                for which in order:
                    results[which][name] += time_calls(ops[which][name], per_round)
    finally:
        small.close()
        large.close()
    rows = [ScaleRow(name, results["small"][name], results["large"][name]) for name in ops["small"]]
    return rows, facts
