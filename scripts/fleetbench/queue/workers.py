"""The job functions the queue libraries run, and the worker processes the benchmark starts
(each runs ``scripts/bench_queue.py`` with a worker flag)."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from fleetbench.paths import ROOT, SCRIPTS
from fleetbench.queue.sizes import HOST, PHASE_TIMEOUT_S, SERVICE
from fleetq import Settings
from fleetq.worker import WorkerQueue


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


#: The probe the job functions of the competitors report to (they are module-level functions);
#: each measurement puts a fresh one here (``workers.PROBE = Probe()``).
PROBE = Probe()


async def arq_noop(ctx: dict[str, Any]) -> None:
    PROBE.hit()


async def saq_noop(ctx: dict[str, Any]) -> None:
    PROBE.hit()


async def bullmq_noop(job: Any, token: str) -> None:
    PROBE.hit()


#: RQ refuses functions of ``__main__``; its workers import this module by name (scripts/ is
#: their sys.path[0], as they run ``scripts/bench_queue.py``).
RQ_MODULE = __name__


def rq_noop() -> None:
    """RQ's job (runs in a worker process)."""


def rq_latency_job(t0_ns: int) -> None:
    """RQ's latency job: report the wake-up time to the parent (CLOCK_MONOTONIC is shared)."""
    from rq import get_current_job

    now = time.perf_counter_ns()
    job = get_current_job()
    assert job is not None
    job.connection.rpush("bench:rq:latency", now - t0_ns)


# -- child processes ------------------------------------------------------------------------------


class Children:
    """Every process the benchmark starts; :meth:`close` ends the ones still running."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "bench_queue.py"), *args],
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
