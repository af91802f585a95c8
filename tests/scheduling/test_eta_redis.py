"""The ETA against a real redis-server: run times recorded by completions, and the estimate
that ``status()`` gives a queued job."""

from __future__ import annotations

from typing import Any

import pytest

from fleetq import Client
from fleetq.eta import updated_mean
from fleetq.model import FaultKind, JobError
from fleetq.worker import WorkerQueue


async def run_for(worker: WorkerQueue, client: Client, graph: dict[str, Any], ms: int) -> None:
    """Submit, claim and complete one job whose run took ``ms`` (its claim time moved back:
    the test decides the run time instead of sleeping it)."""
    client.submit(graph)
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None
    started = int(await worker.store.command("hget", worker.keys.job(claimed.id), "started_ms"))
    await worker.store.command("hset", worker.keys.job(claimed.id), "started_ms", started - ms)
    await worker.complete(claimed, [])


async def runtimes(worker: WorkerQueue) -> dict[str, float]:
    raw = await worker.store.command("hgetall", worker.keys.runtimes("comfyui"))
    return {k.decode(): float(v) for k, v in raw.items()}


async def test_each_completion_updates_the_mean_run_time_of_its_class(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    await run_for(worker, client, graph, 3_000)
    record = await runtimes(worker)
    assert record["n:"] == 1 and record["n:*"] == 1
    assert record["ms:"] == pytest.approx(3_000, abs=50)
    await run_for(worker, client, graph, 1_000)
    record = await runtimes(worker)
    assert record["n:"] == 2
    assert record["ms:"] == pytest.approx(2_000, abs=50)
    assert record["ms:*"] == record["ms:"]


async def test_the_lua_mean_follows_the_python_twin_past_the_plain_mean(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    key = worker.keys.runtimes("comfyui")
    await worker.store.command("hset", key, mapping={"ms:": "2000.0", "n:": "40"})
    await run_for(worker, client, graph, 34_000)
    record = await runtimes(worker)
    expected, runs = updated_mean(2_000.0, 40, 34_000)
    assert record["n:"] == runs == 41
    assert record["ms:"] == pytest.approx(expected, abs=5)


async def test_a_failed_run_records_no_run_time(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    client.submit(graph, max_attempts=1)
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None
    await worker.fail(claimed, FaultKind.JOB, JobError("RuntimeError", "boom"))
    assert await runtimes(worker) == {}


async def test_the_lua_key_of_the_run_times_matches_the_key_schema(worker: WorkerQueue) -> None:
    from fleetq.scripts import script_source

    lib = script_source("complete").split("]]", 1)[1].split("local id = ARGV[3]")[0]
    probe = lib + "\nreturn k_runtimes('S')"
    got = await worker.store.command("eval", probe, 0, worker.keys.prefix, "100")
    assert got.decode() == worker.keys.runtimes("S")
