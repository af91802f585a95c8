"""The ETA against a real redis-server: run times recorded by completions, and the estimate
that ``status()`` gives a queued job."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetq import Client
from fleetq.eta import updated_mean
from fleetq.model import FaultKind, JobError
from fleetq.records import GpuRecord, HostRecord
from fleetq.requirements import requirements_for
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


def class_of(graph: dict[str, Any]) -> str:
    """The requirement class the graph's jobs are filed under ('' when it needs nothing)."""
    needs = requirements_for("comfyui", graph, None)
    return "" if needs.empty else needs.class_id


async def runtimes(worker: WorkerQueue) -> dict[str, float]:
    raw = await worker.store.command("hgetall", worker.keys.runtimes("comfyui"))
    return {k.decode(): float(v) for k, v in raw.items()}


async def test_each_completion_updates_the_mean_run_time_of_its_class(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    cls = class_of(graph)
    await run_for(worker, client, graph, 3_000)
    record = await runtimes(worker)
    assert record[f"n:{cls}"] == 1 and record["n:*"] == 1
    assert record[f"ms:{cls}"] == pytest.approx(3_000, abs=50)
    await run_for(worker, client, graph, 1_000)
    record = await runtimes(worker)
    assert record[f"n:{cls}"] == 2
    assert record[f"ms:{cls}"] == pytest.approx(2_000, abs=50)
    assert record["ms:*"] == record[f"ms:{cls}"]


async def test_the_lua_mean_follows_the_python_twin_past_the_plain_mean(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    key, cls = worker.keys.runtimes("comfyui"), class_of(graph)
    await worker.store.command("hset", key, mapping={f"ms:{cls}": "2000.0", f"n:{cls}": "40"})
    await run_for(worker, client, graph, 34_000)
    record = await runtimes(worker)
    expected, runs = updated_mean(2_000.0, 40, 34_000)
    assert record[f"n:{cls}"] == runs == 41
    assert record[f"ms:{cls}"] == pytest.approx(expected, abs=5)


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


def gpu(
    index: int, busy: bool = False, classes: list[str] | None = None, service: str = "comfyui"
) -> GpuRecord:
    job = {"id": "x", "service": service} if busy else None
    record: dict[str, Any] = {"index": index, "services": [service], "job": job}
    if classes is not None:
        record["classes"] = classes
    parsed = GpuRecord.from_json(record)
    assert parsed is not None
    return parsed


HOST = HostRecord(host="h")


async def test_status_of_a_queued_job_gives_its_estimated_start_and_finish(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    await run_for(worker, client, graph, 4_000)  # the class's mean run time: 4 s
    await worker.publish_host("h", HOST, [gpu(0), gpu(1)])
    jobs = [client.submit(graph) for _ in range(3)]
    first, third = jobs[0].status(), jobs[2].status()
    assert first.eta is not None and third.eta is not None
    # Two idle GPUs: the first job starts at once; the third waits for one of them to end
    # the job it takes first, one run time from now.
    assert first.eta.start_ms == first.eta.now_ms
    assert not first.eta.guess
    assert first.eta.finish_ms - first.eta.start_ms == pytest.approx(4_000, abs=50)
    assert (third.eta.gpus, third.eta.busy, third.eta.ahead) == (2, 0, 2)
    assert third.eta.start_ms - third.eta.now_ms == pytest.approx(4_000, abs=50)
    assert third.eta.to_dict()["start_ms"] == third.eta.start_ms
    assert client.status(jobs[2].id, eta=False).eta is None


async def test_no_estimate_without_a_live_gpu_able_to_run_the_job(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    job = client.submit(graph)
    assert job.status().eta is None  # no supervisor at all
    await worker.publish_host("h", HOST, [gpu(0, classes=[])])
    assert job.status().eta is not None  # the empty class: every GPU runs it
    await worker.publish_host("h", HOST, [gpu(0, service="a1111")])
    assert job.status().eta is None  # the only GPU claims for another service


async def test_a_running_job_and_a_job_in_retry_backoff_have_no_estimate(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    await worker.publish_host("h", HOST, [gpu(0)])
    job = client.submit(graph, max_attempts=3)
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None
    assert job.status().eta is None
    assert await worker.fail(claimed, FaultKind.JOB, JobError("RuntimeError", "x")) == "retrying"
    status = job.status()
    assert status.state.value == "queued" and status.ready_ms is not None
    assert status.eta is None


async def test_async_status_gives_the_same_estimate(
    aclient: Any, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    await worker.publish_host("h", HOST, [gpu(0, busy=True)])
    job = await aclient.submit(graph)
    status = await job.status()
    assert status.eta is not None
    # One busy GPU, nothing ahead: the running job ends half a run time away (the default
    # run time, with none on record).
    assert status.eta.start_ms - status.eta.now_ms == status.eta.run_ms // 2


async def test_fleetq_status_prints_the_eta(
    client: Client, worker: WorkerQueue, graph: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetq.cli.main import main

    job = client.submit(graph)
    settings = client.settings
    args = ["--redis", settings.redis_url, "--namespace", settings.namespace, "status", job.id]
    assert main(args) == 0
    assert "eta        - (no live GPU can run it now)" in capsys.readouterr().out
    await worker.publish_host("h", HOST, [gpu(0, busy=True)])
    assert main([*args, "--json"]) == 0
    eta = json.loads(capsys.readouterr().out)["eta"]
    assert (eta["gpus"], eta["busy"]) == (1, 1)
    assert main(args) == 0
    line = (
        "eta        starts in ~5s, done in ~15s (0 ahead on 1 GPU(s), 10s a run, a guess: "
        "none on record)"
    )
    assert line in capsys.readouterr().out
