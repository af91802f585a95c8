"""The benchmark's markdown report, as docs/BENCHMARKS.md quotes it."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from fleetbench.queue.measure import LatencyRow, ScaleRow, ThroughputRow
from fleetbench.queue.sizes import (
    HEADING,
    LATENCY_P50_MS,
    LATENCY_P99_MS,
    SCALE_RATIO,
    THROUGHPUT_VS_ARQ,
    Sizes,
    percentile,
)

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
