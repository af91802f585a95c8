"""Queue benchmark: fleetq side by side with arq, RQ, saq and BullMQ (Python) on one redis-server.

One run starts one private ``redis-server`` (:class:`fleetq.embedded.RedisServer`, AOF off,
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
docs/BENCHMARKS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import importlib.util
import logging
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from fleetq import AsyncClient, Client, Settings  # noqa: E402
from fleetq.embedded import RedisServer  # noqa: E402
from fleetq.scripts import script_source  # noqa: E402
from fleetq.store import new_job_id  # noqa: E402
from fleetq.validation import build_spec  # noqa: E402
from fleetq.worker import WorkerQueue  # noqa: E402

DOC = ROOT / "docs" / "BENCHMARKS.md"
HEADING = "## Queue core (scripts/bench_queue.py)"
SERVICE = "comfyui"
HOST = "bench"
WORKFLOW = {"1": {"class_type": "Noop", "inputs": {}}}
COMPETITORS = ("arq", "rq", "saq", "bullmq")
ALL_SYSTEMS = ("fleetq", *COMPETITORS)
PHASE_TIMEOUT_S = 900.0

# Targets from the design brief.
LATENCY_P50_MS = 2.0
LATENCY_P99_MS = 10.0
THROUGHPUT_VS_ARQ = 2.0
SCALE_RATIO = 1.5

log = logging.getLogger("bench_queue")


# -- sizes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    latency_samples: int  # per blocking system
    polling_samples: int  # arq: each sample waits up to its poll delay (0.5 s)
    jobs: int  # throughput: jobs per system
    small_size: int  # (c): the small queue
    seed_size: int  # (c): the large queue
    calls: int  # (c): calls timed per operation and size
    rounds: int  # throughput: passes over all systems (the median is reported)
    concurrency: int = 8


FULL = Sizes(1000, 100, 10_000, 1_000, 1_000_000, 500, 3)
QUICK = Sizes(200, 8, 1_000, 1_000, 20_000, 100, 1)
TINY = Sizes(100, 0, 400, 1_000, 5_000, 50, 1)


# -- small helpers --------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@dataclass
class Probe:
    """What the workers report to: job starts (latency) and a count (throughput)."""

    expected: int = 0
    count: int = 0
    waiter: asyncio.Future[int] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    done_ns: int = 0

    def hit(self) -> None:
        now = time.perf_counter_ns()
        self.count += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(now)
        if self.expected and self.count >= self.expected and not self.done.is_set():
            self.done_ns = now
            self.done.set()


#: The probe the job functions of the competitors report to (they are module-level functions).
PROBE = Probe()


async def arq_noop(ctx: dict[str, Any]) -> None:
    PROBE.hit()


async def saq_noop(ctx: dict[str, Any]) -> None:
    PROBE.hit()


async def bullmq_noop(job: Any, token: str) -> None:
    PROBE.hit()


#: RQ refuses functions of ``__main__``; its workers import this file by name (scripts/ is
#: their sys.path[0], as they run this file).
RQ_MODULE = Path(__file__).stem


def rq_noop() -> None:
    """RQ's job (runs in a worker process)."""


def rq_latency_job(t0_ns: int) -> None:
    """RQ's latency job: report the wake-up time to the parent (CLOCK_MONOTONIC is shared)."""
    from rq import get_current_job

    now = time.perf_counter_ns()
    job = get_current_job()
    assert job is not None
    job.connection.rpush("bench:rq:latency", now - t0_ns)


# -- the systems ----------------------------------------------------------------------------------


class System:
    """One queue library: submit one job, run and stop a pool of in-process workers."""

    name = ""
    how = ""

    async def open(self) -> None: ...

    async def enqueue(self) -> None:
        raise NotImplementedError

    async def start_workers(self, concurrency: int, *, defaults: bool = False) -> None:
        raise NotImplementedError

    async def stop_workers(self) -> None: ...

    async def close(self) -> None: ...


class Fleetq(System):
    name = "fleetq"

    def __init__(self, url: str, namespace: str) -> None:
        self.settings = Settings(redis_url=url, namespace=namespace)
        self.client: AsyncClient | None = None
        self.queues: list[WorkerQueue] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.stop = asyncio.Event()

    async def open(self) -> None:
        self.client = AsyncClient(self.settings)

    async def enqueue(self) -> None:
        assert self.client is not None
        await self.client.submit(WORKFLOW, service=SERVICE)

    async def start_workers(self, concurrency: int, *, defaults: bool = False) -> None:
        self.stop.clear()
        self.queues = [WorkerQueue(self.settings) for _ in range(concurrency)]
        self.tasks = [
            asyncio.create_task(self._claimer(wq, gpu), name=f"claimer-{gpu}")
            for gpu, wq in enumerate(self.queues)
        ]

    async def _claimer(self, wq: WorkerQueue, gpu: int) -> None:
        while not self.stop.is_set():
            outcome = await wq.claim([SERVICE], HOST, gpu, timeout_s=0.5)
            if outcome.job is None:
                continue
            PROBE.hit()  # counted at the claim: the same point as the others' job start
            await wq.complete(outcome.job, ())

    async def stop_workers(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)
        for wq in self.queues:
            await wq.aclose()
        self.queues, self.tasks = [], []

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def completed(self) -> int:
        assert self.client is not None
        stats = await self.client.stats()
        return sum(s.completed for s in stats.services if s.service == SERVICE)


class Arq(System):
    name = "arq"

    def __init__(self, url: str, port: int, poll_delay_s: float | None = None) -> None:
        from arq.connections import RedisSettings

        self.redis_settings = RedisSettings(host="127.0.0.1", port=port)
        self.poll_delay_s = poll_delay_s
        self.pool: Any = None
        self.worker: Any = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        from arq import create_pool

        self.pool = await create_pool(self.redis_settings)

    async def enqueue(self) -> None:
        await self.pool.enqueue_job("arq_noop")

    async def start_workers(self, concurrency: int, *, defaults: bool = False) -> None:
        from arq.worker import Worker, func

        options: dict[str, Any] = {}
        if not defaults:
            options["max_jobs"] = concurrency
            if self.poll_delay_s is not None:
                options["poll_delay"] = self.poll_delay_s
        self.worker = Worker(
            functions=[func(arq_noop, name="arq_noop")],
            redis_settings=self.redis_settings,
            handle_signals=False,
            **options,
        )
        self.task = asyncio.create_task(self.worker.async_run(), name="arq-worker")

    async def stop_workers(self) -> None:
        running = [t for t in self.worker.tasks.values() if not t.done()]
        if running:  # let the last jobs finish; close() cancels what still runs
            await asyncio.wait(running, timeout=30)
        await self.worker.close()  # cancels its main task
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task  # the cancellation we asked for, not ours

    async def close(self) -> None:
        await self.pool.aclose()


class Saq(System):
    name = "saq"

    def __init__(self, url: str) -> None:
        from saq import Queue

        self.queue = Queue.from_url(url, name="bench")
        self.worker: Any = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.queue.connect()

    async def enqueue(self) -> None:
        await self.queue.enqueue("saq_noop")

    async def start_workers(self, concurrency: int, *, defaults: bool = False) -> None:
        from saq import Worker

        self.worker = Worker(self.queue, functions=[saq_noop], concurrency=concurrency)
        self.worker.SIGNALS = []  # the benchmark owns the signals
        self.task = asyncio.create_task(self.worker.start(), name="saq-worker")
        await asyncio.sleep(0)

    async def stop_workers(self) -> None:
        await self.worker.stop()
        if self.task is not None:
            await self.task

    async def close(self) -> None:
        await self.queue.disconnect()


class Bullmq(System):
    name = "bullmq"

    def __init__(self, url: str) -> None:
        self.url = url
        self.queue: Any = None
        self.worker: Any = None

    async def open(self) -> None:
        from bullmq import Queue  # type: ignore[import-untyped,unused-ignore]

        self.queue = Queue("bench", {"connection": self.url})

    async def enqueue(self) -> None:
        await self.queue.add("noop", {})

    async def start_workers(self, concurrency: int, *, defaults: bool = False) -> None:
        from bullmq import Worker  # type: ignore[import-untyped,unused-ignore]

        opts: dict[str, Any] = {"connection": self.url}
        if not defaults:
            opts["concurrency"] = concurrency
        self.worker = Worker("bench", bullmq_noop, opts)
        await asyncio.sleep(0)

    async def stop_workers(self) -> None:
        # force: a blocked BZPOPMIN would otherwise wait out drainDelay (5 s).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            await self.worker.close(force=True)

    async def close(self) -> None:
        with warnings.catch_warnings():  # it calls redis-py's deprecated close()
            warnings.simplefilter("ignore", DeprecationWarning)
            await self.queue.close()


# -- child processes ------------------------------------------------------------------------------


class Children:
    """Every process the benchmark starts; :meth:`close` ends the ones still running."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self.procs = []


def run_pool(children: Children, args: Sequence[str], count: int) -> tuple[float, float]:
    """Start ``count`` worker processes and release them together. Returns the seconds until
    all exit and the CPU seconds they spent after their release."""
    procs = [children.spawn(*args) for _ in range(count)]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"worker process {shlex.join(args)} did not start: {line!r}")
    t0 = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    deadline = t0 + PHASE_TIMEOUT_S
    for proc in procs:
        rc = proc.wait(timeout=max(1.0, deadline - time.perf_counter()))
        if rc != 0:
            raise RuntimeError(f"worker process {shlex.join(args)} exited with {rc}")
    wall_s = time.perf_counter() - t0
    cpu_s = 0.0
    for proc in procs:
        assert proc.stdout is not None
        for line in proc.stdout.read().splitlines():
            if line.startswith("cpu "):
                cpu_s += float(line.split()[1])
    return wall_s, cpu_s


def report_cpu(since: float) -> None:
    """Child: tell the parent the CPU seconds spent since ``since`` (a process_time)."""
    print(f"cpu {time.process_time() - since:.6f}", flush=True)


def rq_worker_main(url: str, burst: bool) -> None:
    """Child: one RQ SimpleWorker (no fork per job) on queue ``bench``."""
    from rq import Queue, SimpleWorker

    conn = redis.Redis.from_url(url)
    worker = SimpleWorker([Queue("bench", connection=conn)], connection=conn)
    print("ready", flush=True)
    if burst:
        sys.stdin.readline()
    cpu0 = time.process_time()
    worker.work(burst=burst, logging_level="WARNING")
    report_cpu(cpu0)


def fleetq_worker_main(url: str, namespace: str) -> None:
    """Child: one fleetq claimer that drains the queue and exits (burst)."""

    async def drain() -> None:
        wq = WorkerQueue(Settings(redis_url=url, namespace=namespace))
        try:
            await wq.paused_services()  # connect before the clock starts
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            cpu0 = time.process_time()
            while True:
                outcome = await wq.try_claim([SERVICE], HOST, 0)
                if outcome.job is None:
                    report_cpu(cpu0)
                    return
                await wq.complete(outcome.job, ())
        finally:
            await wq.aclose()

    asyncio.run(drain())


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
    global PROBE
    PROBE = Probe()
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
            PROBE.waiter = loop.create_future()
            t0 = time.perf_counter_ns()
            await system.enqueue()
            t1 = await asyncio.wait_for(PROBE.waiter, 30)
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
    global PROBE
    await system.open()
    try:
        t0 = time.perf_counter()
        for _ in range(jobs):
            await system.enqueue()
        enqueue_s = time.perf_counter() - t0
        PROBE = Probe(expected=jobs)
        t0_ns = time.perf_counter_ns()
        await system.start_workers(concurrency)
        try:
            await asyncio.wait_for(PROBE.done.wait(), PHASE_TIMEOUT_S)
        finally:
            await system.stop_workers()
        drain_s = (PROBE.done_ns - t0_ns) / 1e9
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


# -- the report -----------------------------------------------------------------------------------


@dataclass
class Report:
    sizes: Sizes
    command: str
    facts: dict[str, str] = field(default_factory=dict)
    latency: list[LatencyRow] = field(default_factory=list)
    throughput: list[ThroughputRow] = field(default_factory=list)
    scale: list[ScaleRow] = field(default_factory=list)
    scale_facts: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def targets(self) -> list[tuple[str, bool | None, str]]:
        out: list[tuple[str, bool | None, str]] = []
        lat = next((r for r in self.latency if r.system == "fleetq" and r.samples), None)
        if lat is not None:
            p50, p99 = percentile(lat.samples, 50), percentile(lat.samples, 99)
            out.append(
                (f"latency p50 <= {LATENCY_P50_MS:g} ms", p50 <= LATENCY_P50_MS, f"{p50:.2f} ms")
            )
            out.append(
                (f"latency p99 <= {LATENCY_P99_MS:g} ms", p99 <= LATENCY_P99_MS, f"{p99:.2f} ms")
            )
        fq = next((r for r in self.throughput if r.system == "fleetq"), None)
        arqs = [r for r in self.throughput if r.system.startswith("arq")]
        if fq is not None:
            if arqs:
                best = max(arqs, key=lambda r: r.drain_rate)
                ratio = fq.drain_rate / best.drain_rate
                out.append(
                    (
                        f"throughput >= {THROUGHPUT_VS_ARQ:g}x arq (its fastest row)",
                        ratio >= THROUGHPUT_VS_ARQ,
                        f"{ratio:.1f}x ({fq.drain_rate:,.0f} vs {best.drain_rate:,.0f} jobs/s)",
                    )
                )
            else:
                out.append((f"throughput >= {THROUGHPUT_VS_ARQ:g}x arq", None, "arq not run"))
        for row in self.scale:
            ratio = statistics.median(row.large) / statistics.median(row.small)
            flat = ratio <= SCALE_RATIO
            out.append(
                (f"{row.call} flat (large within {SCALE_RATIO:g}x of small)", flat, f"{ratio:.2f}x")
            )
        return out

    def markdown(self) -> str:
        s = self.sizes
        f = self.facts
        lines = [
            HEADING,
            "",
            f"Measured {f['date']} on {f['cpus']} CPUs ({f['cpu']}), {f['os']}, "
            f"Python {f['python']}, redis-server {f['redis_server']} (private, loopback, AOF and "
            f"RDB off), redis-py {f['redis_py']} ({f['parser']} parser). Libraries: "
            f"{f['libraries']}. Load average (1 min) {f['load_before']} at the start, "
            f"{f.get('load_after', '?')} at the end, run time {f.get('run_s', '?')} s: the "
            "machine may be shared, and the rates move with its load more than the ratios and "
            "the CPU columns do.",
            "",
            "Reproduce (from the repository root):",
            "",
            "```sh",
            ".venv/bin/pip install arq rq saq bullmq   # optional; a missing one is skipped",
            f'.venv/bin/pip install "redis=={f["redis_py"]}"   # arq and bullmq pull in redis-py 5',
            self.command,
            "```",
            "",
            "Every system runs in the same process run, against the same redis-server, one after "
            "the other; the database is flushed between systems. Clients and workers run on the "
            "same machine as Redis, so the CPUs are shared by Redis, the workers and the "
            "submitter.",
            "",
        ]
        if self.latency:
            lines += [
                "### Submit-to-claim latency, one idle worker",
                "",
                "From just before the submit call to the moment the worker holds the job "
                "(fleetq: `WorkerQueue.claim` returns; the others: the job function starts). "
                "Before each submit of a blocking system the benchmark waits until Redis reports "
                "the worker blocked (`INFO clients`); a polling system gets each submit at a "
                "random point of its poll cycle.",
                "",
                "| system | how the idle worker waits | samples | p50 ms | p99 ms | max ms |",
                "|---|---|---:|---:|---:|---:|",
            ]
            for r in self.latency:
                if not r.samples:
                    lines.append(f"| {r.system} | {r.how} | - | - | - | {r.note} |")
                    continue
                lines.append(
                    f"| {r.system} | {r.how} | {len(r.samples)} | "
                    f"{percentile(r.samples, 50):.2f} | {percentile(r.samples, 99):.2f} | "
                    f"{max(r.samples):.2f} |"
                )
            lines.append("")
        if self.throughput:
            arq_rates = [r.drain_rate for r in self.throughput if r.system.startswith("arq")]
            best_arq = max(arq_rates) if arq_rates else None
            lines += [
                f"### No-op throughput, {s.concurrency} concurrent workers",
                "",
                "Each system first takes its jobs one submit call at a time from one asyncio "
                "task (RQ: one synchronous client), which gives the enqueue rate; then its "
                "workers drain the queue. The drain clock runs from starting the workers until "
                "the last job is claimed (fleetq) or starts (the others); for the rows run as "
                "processes, from releasing the started processes until they all exit. Redis CPU "
                "is the redis-server's user plus system CPU time over the enqueue and the drain, "
                "per job: the load one job puts on the hub. Client CPU is the same for the "
                "submitter and the workers together (worker processes: from their release "
                "to their exit). The CPU columns depend less on other load on the machine than "
                "the rates do."
                + (
                    f" Each row is the median of {s.rounds} rounds; a round runs every system "
                    "once, in a rotated order, so load from elsewhere on the machine spreads "
                    "over all of them (arq with its default poll delay runs once: its rate is "
                    "set by its timer). The range is the slowest and the fastest round."
                    if s.rounds > 1
                    else ""
                ),
                "",
                "| system | workers | jobs | rounds | enqueue jobs/s | drain jobs/s | drain range "
                "| drain vs best arq | Redis CPU µs/job | client CPU µs/job |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for t in self.throughput:
                vs = f"{t.drain_rate / best_arq:.1f}x" if best_arq else "-"
                low, high = t.drain_rates[0], t.drain_rates[-1]
                spread = f"{low:,.0f}-{high:,.0f}" if len(t.runs) > 1 else "-"
                lines.append(
                    f"| {t.system} | {t.workers} | {t.jobs:,} | {len(t.runs)} | "
                    f"{t.enqueue_rate:,.0f} | {t.drain_rate:,.0f} | {spread} | {vs} | "
                    f"{t.redis_us_per_job:,.0f} | {t.client_us_per_job:,.0f} |"
                )
            lines.append("")
        if self.scale:
            sf = self.scale_facts
            lines += [
                f"### fleetq: cost with {s.small_size:,} vs {s.seed_size:,} jobs queued",
                "",
                f"Two fleets (namespaces) in the same Redis, one with {s.small_size:,} and one "
                f"with {s.seed_size:,} jobs queued, each called through a synchronous `Client`, "
                f"one call at a time: {s.calls} calls per cell after 20 warm-up calls, in 10 "
                f"rounds that alternate between the two fleets (so drift on a shared machine "
                f"hits both alike). The queues are seeded with the submit script in pipelines "
                f"({s.seed_size:,} jobs in {sf.get('seed_s', 0):.0f} s; "
                f"{sf.get('used_memory', 0) / 2**20:,.0f} MiB of Redis memory, "
                f"{sf.get('bytes_per_job', 0):,.0f} bytes per queued job). `job.status()` asks "
                f"for a job in the middle of the queue (position "
                f"{sf.get('position_large', 0):,} of the large one); `submit()` adds to the "
                f"end of it.",
                "",
                f"| call | p50 ms at {s.small_size:,} | p50 ms at {s.seed_size:,} | ratio | "
                f"p99 ms at {s.small_size:,} | p99 ms at {s.seed_size:,} |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for row in self.scale:
                a, b = statistics.median(row.small), statistics.median(row.large)
                lines.append(
                    f"| `{row.call}` | {a:.3f} | {b:.3f} | {b / a:.2f}x | "
                    f"{percentile(row.small, 99):.3f} | {percentile(row.large, 99):.3f} |"
                )
            lines.append("")
        targets = self.targets()
        if targets:
            lines += ["### Targets", "", "| target | result | measured |", "|---|---|---|"]
            for name, ok, measured in targets:
                verdict = "n/a" if ok is None else ("met" if ok else "**missed**")
                lines.append(f"| {name} | {verdict} | {measured} |")
            lines.append("")
        lines += ["### How each system was run", ""]
        lines += [f"- {line}" for line in HOW_RUN if line.split(":", 1)[0] in self.systems_run()]
        lines += [f"- {line}" for line in self.skipped]
        lines += ["", "### Notes", ""]
        lines += [f"- {line}" for line in NOTES]
        lines.append("")
        return "\n".join(lines)

    def systems_run(self) -> set[str]:
        rows: list[LatencyRow | ThroughputRow] = [*self.latency, *self.throughput]
        names = {r.system.split(" ")[0] for r in rows}
        return names | ({"fleetq"} if self.scale else set())


HOW_RUN = (
    "fleetq: latency: one claimer task looping `WorkerQueue.claim` (BZPOPMIN on the service's "
    "wake-up marker, then the claim script), the submitter an `AsyncClient` in the same event "
    "loop. Throughput: 8 claimer tasks in one asyncio process, each with its own `WorkerQueue` "
    "(own connection), each looping `claim` then `complete`; the drain clock stops at the last "
    'claim. The row "fleetq (8 processes)" runs 8 processes of one claimer each '
    "(`try_claim`/`complete` until the queue is empty), timed from their release to their exit, "
    "like RQ.",
    "arq: latency with arq's default worker settings (`poll_delay` 0.5 s, `max_jobs` 10): its "
    "worker polls the queue, so a submit waits for the next poll. Throughput: one `Worker` with "
    "`max_jobs=8` in the benchmark's event loop, once with the default `poll_delay` (0.5 s: "
    "after each batch of up to 100 job ids the worker sleeps out the rest of 0.5 s) and once "
    "with `poll_delay=0.01`. Jobs via `ArqRedis.enqueue_job`.",
    "rq: `SimpleWorker` (no fork per job) in separate processes, since RQ is synchronous. "
    "Latency: one non-burst worker process blocked in BLPOP; the job pushes its start time "
    "(`time.perf_counter_ns`, CLOCK_MONOTONIC, shared by the processes) back to the benchmark. "
    "Throughput: 8 worker processes in burst mode, started and connected first, then released "
    "together; timed from their release to their exit. Jobs via `Queue.enqueue`.",
    "saq: one `Worker(concurrency=N)` in the benchmark's event loop (N = 1 for latency, 8 for "
    "throughput); its idle workers block in BLMOVE. Jobs via `Queue.enqueue`.",
    "bullmq: the Python port's `Worker` with `concurrency` N (1 for latency, 8 for throughput) "
    "in the benchmark's event loop; idle, it blocks in BZPOPMIN on the queue's marker. Jobs via "
    "`Queue.add`.",
)


NOTES = (
    "All systems share one redis-py and one reply parser in a run. Installing `hiredis` speeds "
    "up every Python client (redis-py uses it for parsing and packing when present); arq "
    "itself asks for `redis[hiredis]`.",
    "arq 0.28 and the BullMQ port pin redis-py below 6: `pip install arq bullmq` downgrades "
    "redis-py in the fleetq environment unless it is reinstalled afterwards (the version above "
    "is the one this run used, for every system).",
    "fleetq counts a job at its claim and completes it afterwards; the others count a job when "
    "their job function starts. Each system's own bookkeeping after that (fleetq's complete, "
    "arq's result, saq's and BullMQ's finish, RQ's registries) is in the drain time of every "
    "job but the last few.",
)


# -- the run --------------------------------------------------------------------------------------


def machine_facts(url: str, systems: Sequence[str]) -> dict[str, str]:
    conn = redis.Redis.from_url(url)
    try:
        server = conn.info("server")
    finally:
        conn.close()
    libs = [f"{name} {version_of(name)}" for name in systems if name != "fleetq"]
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "cpu": cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis_server": str(server["redis_version"]),
        "redis_py": version_of("redis"),
        "parser": "hiredis" if installed("hiredis") else "pure-Python",
        "libraries": ", ".join(libs) if libs else "none (fleetq only)",
        "load_before": f"{os.getloadavg()[0]:.1f}",
    }


@dataclass(frozen=True)
class Plan:
    """One row to measure: a label, how its workers run or wait, and a factory of the system."""

    label: str
    how: str
    make: Callable[[], System]
    blocking: bool = True  # latency: the idle worker blocks in Redis (else it polls)
    defaults: bool = False  # latency: the library's default worker settings


def latency_plans(url: str, port: int, systems: Sequence[str]) -> list[Plan]:
    plans = []
    if "fleetq" in systems:
        how = "BZPOPMIN on a marker, then the claim script"
        plans.append(Plan("fleetq", how, lambda: Fleetq(url, "bench-lat")))
    if "arq" in systems:
        how = "polls every 0.5 s (`poll_delay` default)"
        plans.append(Plan("arq (defaults)", how, lambda: Arq(url, port), False, True))
    if "saq" in systems:
        plans.append(Plan("saq", "BLMOVE on the queue list", lambda: Saq(url)))
    if "bullmq" in systems:
        plans.append(Plan("bullmq", "BZPOPMIN on a marker", lambda: Bullmq(url)))
    return plans


def throughput_plans(url: str, port: int, systems: Sequence[str], c: int) -> list[Plan]:
    plans = []
    if "fleetq" in systems:
        how = f"{c} asyncio claimers, 1 process"
        plans.append(Plan("fleetq", how, lambda: Fleetq(url, "bench-tp")))
    if "arq" in systems:
        how = f"1 Worker, max_jobs={c}"
        plans.append(Plan("arq (poll_delay 0.5 s)", how, lambda: Arq(url, port)))
        plans.append(Plan("arq (poll_delay 0.01 s)", how, lambda: Arq(url, port, 0.01)))
    if "saq" in systems:
        plans.append(Plan("saq", f"1 Worker, concurrency={c}", lambda: Saq(url)))
    if "bullmq" in systems:
        plans.append(Plan("bullmq", f"1 Worker, concurrency={c}", lambda: Bullmq(url)))
    return plans


async def run_async_phases(
    url: str,
    port: int,
    systems: Sequence[str],
    sizes: Sizes,
    report: Report,
    children: Children,
    say: Callable[[str], None],
) -> None:
    """(a) and (b) for every system, one after the other, flushing Redis in between.

    Throughput runs in rounds, each round every system once (in a rotated order), so that load
    from elsewhere on a shared machine spreads over all systems; the report takes the median.
    """
    flush = redis.Redis.from_url(url)
    monitor = aioredis.Redis.from_url(url)
    n, c = sizes.jobs, sizes.concurrency
    failed: set[str] = set()

    def redis_cpu_s() -> float:
        info = flush.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    async def attempt(label: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run one measurement on a fresh database; a competitor's failure only drops its row."""
        if label in failed:
            return
        flush.flushall()
        try:
            await step()
        except Exception as e:
            if label.startswith("fleetq"):
                raise
            say(f"  {label} failed: {type(e).__name__}: {e}")
            failed.add(label)
            report.skipped.append(f"{label}: failed ({type(e).__name__}: {e}); no result")

    def latency_step(plan: Plan, samples: int) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            say(f"latency: {plan.label} ({samples} samples)")
            system = plan.make()
            values = await measure_latency(system, samples, monitor, plan.blocking, plan.defaults)
            report.latency.append(LatencyRow(plan.label, plan.how, values))

        return step

    async def rq_latency() -> None:
        say(f"latency: rq ({sizes.latency_samples} samples)")
        samples = sizes.latency_samples
        values = await asyncio.to_thread(measure_rq_latency, url, children, samples)
        how = "BLPOP on the queue list (worker process)"
        report.latency.append(LatencyRow("rq", how, values))

    def in_process(plan: Plan) -> Callable[[], Awaitable[Run]]:
        async def run() -> Run:
            system = plan.make()
            cpu0, mine0 = redis_cpu_s(), client_cpu_s()
            enqueue_s, drain_s = await measure_throughput(system, n, c)
            cpu, mine = redis_cpu_s() - cpu0, client_cpu_s() - mine0
            if isinstance(system, Fleetq):
                await check_fleetq_completed(system, n)
            return Run(enqueue_s, drain_s, cpu, mine)

        return run

    async def fleetq_processes() -> Run:
        system = Fleetq(url, "bench-tp")
        cpu0, mine0 = redis_cpu_s(), client_cpu_s()
        await system.open()
        try:
            t0 = time.perf_counter()
            for _ in range(n):
                await system.enqueue()
            enqueue_s = time.perf_counter() - t0
        finally:
            await system.close()
        args = ("--fleetq-worker", url, "bench-tp")
        drain_s, workers_cpu = await asyncio.to_thread(run_pool, children, args, c)
        cpu, mine = redis_cpu_s() - cpu0, client_cpu_s() - mine0
        await check_fleetq_completed(system, n)
        return Run(enqueue_s, drain_s, cpu, mine + workers_cpu)

    async def rq_processes() -> Run:
        cpu0, mine0 = redis_cpu_s(), client_cpu_s()
        enqueue_s = await asyncio.to_thread(rq_enqueue, url, n)
        args = ("--rq-worker-burst", url)
        drain_s, workers_cpu = await asyncio.to_thread(run_pool, children, args, c)
        cpu, mine = redis_cpu_s() - cpu0, client_cpu_s() - mine0 + workers_cpu
        finished = await asyncio.to_thread(rq_finished, url)
        if finished != n:
            raise RuntimeError(f"rq finished {finished} of {n} jobs")
        return Run(enqueue_s, drain_s, cpu, mine)

    def throughput_step(
        row: ThroughputRow, run: Callable[[], Awaitable[Run]], label: str
    ) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            say(f"throughput: {label} ({n:,} jobs)")
            row.runs.append(await run())

        return step

    try:
        for plan in latency_plans(url, port, systems):
            samples = sizes.latency_samples if plan.blocking else sizes.polling_samples
            if samples:
                await attempt(plan.label, latency_step(plan, samples))
        if "rq" in systems:
            await attempt("rq", rq_latency)

        # (label, row, one run, rounds): arq's default poll delay caps it at 200 jobs/s, a
        # rate set by its timer, not by load; one round of it is enough.
        entries: list[tuple[ThroughputRow, Callable[[], Awaitable[Run]], int]] = []
        for plan in throughput_plans(url, port, systems, c):
            rounds = 1 if plan.label == "arq (poll_delay 0.5 s)" else sizes.rounds
            entries.append((ThroughputRow(plan.label, plan.how, n), in_process(plan), rounds))
        if "fleetq" in systems:
            row = ThroughputRow(f"fleetq ({c} processes)", f"{c} processes, 1 claimer each", n)
            entries.append((row, fleetq_processes, sizes.rounds))
        if "rq" in systems:
            row = ThroughputRow("rq", f"{c} SimpleWorker processes, burst", n)
            entries.append((row, rq_processes, sizes.rounds))
        for r in range(sizes.rounds):
            turn = entries[r % len(entries) :] + entries[: r % len(entries)] if entries else []
            for row, run, rounds in turn:
                if r < rounds:
                    label = f"{row.system}, round {r + 1} of {rounds}"
                    await attempt(row.system, throughput_step(row, run, label))
        report.throughput.extend(row for row, _, _ in entries if row.runs)
        flush.flushall()
    finally:
        flush.close()
        await monitor.aclose()


async def check_fleetq_completed(system: Fleetq, expected: int) -> None:
    await system.open()
    try:
        completed = await system.completed()
    finally:
        await system.close()
    if completed != expected:
        raise RuntimeError(f"fleetq completed {completed} of {expected} jobs")


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


def command_line(argv: Sequence[str]) -> str:
    script = Path(__file__).resolve().relative_to(ROOT)
    return shlex.join([".venv/bin/python", str(script), *argv])


def write_doc(section: str) -> None:
    """Replace (or add) this benchmark's section of docs/BENCHMARKS.md, keeping the others."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == HEADING), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        rest = "\n".join(lines[end:])
        new = "\n".join(lines[:start]) + "\n" + section.rstrip("\n") + "\n"
        if rest:
            new += "\n" + rest.rstrip("\n") + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(new.lstrip("\n"), encoding="utf-8")


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
    report = Report(sizes, command_line([a for a in argv if a not in ("-v", "--verbose")]))
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
        write_doc(section)
        say(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
