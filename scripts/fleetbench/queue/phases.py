"""The phases of a run, in the order they run, and the machine facts the report quotes."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from fleetbench.queue.measure import (
    LatencyRow,
    Run,
    ThroughputRow,
    client_cpu_s,
    measure_latency,
    measure_rq_latency,
    measure_throughput,
    rq_enqueue,
    rq_finished,
)
from fleetbench.queue.report import Report
from fleetbench.queue.sizes import Sizes, cpu_model, installed, version_of
from fleetbench.queue.systems import Arq, Bullmq, Fleetq, Saq, System
from fleetbench.queue.workers import Children, run_pool

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
