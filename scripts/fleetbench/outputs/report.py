"""The markdown section of docs/BENCHMARKS.md for the output store benchmark."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fleetbench.outputs.measure import MemoryFigures, TimeFigures

HEADING = "## Output stores: Redis memory per job and large outputs (scripts/bench_outputs.py)"


def _size(n: float) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:,.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:,.1f} KiB"
    return f"{n:,.0f} B"


def render(
    memory: Sequence[MemoryFigures],
    times: Sequence[TimeFigures],
    facts: Mapping[str, str],
    command: str,
) -> str:
    baseline = next((m.per_job_bytes for m in memory if m.output_bytes == 0), 0.0)
    lines = [
        HEADING,
        "",
        f"Run: `{command}` on {facts['date']}, commit {facts['commit']}: {facts['cpus']} CPU(s) "
        f"({facts['cpu']}), {facts['os']}, Python {facts['python']}, Redis "
        f"{facts['redis_server']}, load average {facts['load_before']} before the run. S3 is "
        "moto's standalone server on loopback (a real S3 API, not a real disk array); the "
        "folder is a local disk. Jobs are completed through the worker API (the supervisor's "
        "own calls) and read back with the synchronous client.",
        "",
        "Redis memory per completed job: `INFO used_memory` grown over the jobs, divided by "
        "their number (the job's hash, its events, its outputs); *outputs' share* subtracts "
        "the same figure for jobs that completed with no output (allocator noise of a few "
        "hundred bytes either way; clamped at 0); *job keys* is `MEMORY USAGE ... SAMPLES 0` of "
        "the job hash plus its output hash; *record* is the output records in the job hash, "
        "exactly. Target: at most 2 KiB per job in Redis for the outputs, whatever their size.",
        "",
        "| store | output size | jobs | per job | outputs' share | job keys | record |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in memory:
        share = "-" if m.output_bytes == 0 else _size(max(0.0, m.per_job_bytes - baseline))
        lines.append(
            f"| {m.store} | {_size(m.output_bytes) if m.output_bytes else 'none'} | {m.jobs} "
            f"| {_size(m.per_job_bytes)} | {share} | {_size(m.keys_bytes)} "
            f"| {_size(m.record_bytes)} |"
        )
    lines += [
        "",
        "Time a large output adds (median of the repetitions): *store + complete* is the "
        "supervisor's side (hash, upload or inline copy, the completion script); *read* is "
        "`client.result()` returning the bytes.",
        "",
        "| store | output size | reps | store + complete | read |",
        "|---|---:|---:|---:|---:|",
    ]
    for t in times:
        lines.append(
            f"| {t.store} | {_size(t.output_bytes)} | {t.reps} | {t.complete_s * 1000:,.0f} ms "
            f"| {t.read_s * 1000:,.0f} ms |"
        )
    return "\n".join(lines) + "\n"
