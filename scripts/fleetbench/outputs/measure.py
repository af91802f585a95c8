"""One store's figures: complete jobs through the real worker API, read them back through the
real client, and measure Redis (INFO memory, MEMORY USAGE) and the wall time of each side."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from fleetq import Client, Settings
from fleetq.model import Output
from fleetq.worker import WorkerQueue

WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "b"}},
}


@dataclass(frozen=True)
class MemoryFigures:
    store: str
    output_bytes: int
    jobs: int
    #: INFO used_memory grown per completed job (everything: job hash, events, outputs).
    per_job_bytes: float
    #: MEMORY USAGE of the job's hash plus its output hash (mean over the jobs).
    keys_bytes: float
    #: The output records in the job's hash (its ``outputs`` field), mean bytes.
    record_bytes: float


@dataclass(frozen=True)
class TimeFigures:
    store: str
    output_bytes: int
    reps: int
    #: Median seconds to store the outputs and complete the job (the supervisor's side).
    complete_s: float
    #: Median seconds for ``client.result()`` to return the bytes.
    read_s: float


async def _claim(worker: WorkerQueue) -> Any:
    outcome = await worker.try_claim(["comfyui"], "bench", 0)
    assert outcome.job is not None, "no job to claim"
    return outcome.job


def _used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


async def memory_per_job(
    base: Settings, store: str, label: str, output_bytes: int, jobs: int
) -> MemoryFigures:
    """Complete ``jobs`` jobs with one ``output_bytes`` output each (0: no output)."""
    settings = base.with_overrides(namespace="b" + uuid.uuid4().hex[:8], output_store=store)
    r = redis.Redis.from_url(settings.redis_url)
    worker = WorkerQueue(settings)
    data = os.urandom(output_bytes)
    try:
        with Client(settings) as client:
            client.submit(WORKFLOW)  # the first job creates the queue's own keys; not counted
            await worker.complete(await _claim(worker), [])
            before = _used_memory(r)
            ids = []
            for _ in range(jobs):
                ids.append(client.submit(WORKFLOW).id)
                outputs = [Output("out.png", "image/png", data)] if output_bytes else []
                await worker.complete(await _claim(worker), outputs)
            grown = _used_memory(r) - before
            keys = worker.keys
            usage = [
                # SAMPLES 0: every field counted (the default samples 5 and extrapolates).
                (r.memory_usage(keys.job(i), samples=0) or 0)
                + (r.memory_usage(keys.outputs(i), samples=0) or 0)
                for i in ids
            ]
            records = [r.hstrlen(keys.job(i), "outputs") for i in ids]
    finally:
        await worker.aclose()
        r.close()
    return MemoryFigures(
        label, output_bytes, jobs, grown / jobs, statistics.fmean(usage), statistics.fmean(records)
    )


async def time_large_output(
    base: Settings, store: str, label: str, output_bytes: int, reps: int
) -> TimeFigures:
    """Median time to store + complete one job with one ``output_bytes`` output, and to read it
    back with ``client.result()``."""
    settings = base.with_overrides(namespace="b" + uuid.uuid4().hex[:8], output_store=store)
    worker = WorkerQueue(settings)
    data = os.urandom(output_bytes)
    completes, reads = [], []
    try:
        with Client(settings) as client:
            for _ in range(reps):
                job = client.submit(WORKFLOW)
                claimed = await _claim(worker)
                started = time.perf_counter()
                await worker.complete(claimed, [Output("out.png", "image/png", data)])
                completes.append(time.perf_counter() - started)
                started = time.perf_counter()
                result = await asyncio.to_thread(client.result, job.id)
                reads.append(time.perf_counter() - started)
                assert result.outputs[0].data == data, "the output came back changed"
            # Leave Redis as small as it was for the next store.
            client.store.command("flushdb")
    finally:
        await worker.aclose()
    return TimeFigures(
        label, output_bytes, reps, statistics.median(completes), statistics.median(reads)
    )
