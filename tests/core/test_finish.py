"""Completion with outputs, job faults with retries, infrastructure faults, result waiting."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from fleetq import Client, JobCancelled, JobFailed, Settings
from fleetq.errors import InvalidTransition, OutputTooLarge
from fleetq.model import FaultKind, JobError, Output
from fleetq.worker import WorkerQueue


async def claim(worker: WorkerQueue, gpu: int = 0) -> Any:
    outcome = await worker.try_claim(["comfyui"], "h", gpu)
    assert outcome.job is not None
    return outcome.job


async def test_complete_stores_outputs_and_wait_returns_them(
    client: Client, worker: WorkerQueue, graph: dict[str, Any], tmp_path: Path
) -> None:
    job = client.submit(graph)
    claimed = await claim(worker)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    await worker.complete(
        claimed,
        [Output("img_00001_.png", "image/png", png), Output("../../evil.txt", "text/plain", b"x")],
    )
    result = job.wait(timeout_s=5)
    assert [(o.filename, o.content_type, o.data) for o in result.outputs] == [
        ("img_00001_.png", "image/png", png), ("../../evil.txt", "text/plain", b"x"),
    ]  # fmt: skip
    saved = result.save(tmp_path / "out")
    assert [p.name for p in saved] == ["img_00001_.png", "evil.txt"]
    assert all(p.parent == tmp_path / "out" for p in saved)
    assert saved[0].read_bytes() == png
    status = job.status()
    assert status.state.value == "completed" and status.progress == 1.0
    assert status.timeline[-1].outcome == "completed"
    assert [o.size for o in status.outputs] == [len(png), 1]


async def test_outputs_over_the_cap_are_refused(
    client: Client, settings: Settings, graph: dict[str, Any]
) -> None:
    client.submit(graph)
    worker = WorkerQueue(settings.with_overrides(max_output_bytes=10))
    claimed = await claim(worker)
    with pytest.raises(OutputTooLarge):
        await worker.complete(claimed, [Output("a.png", "image/png", b"x" * 11)])
    assert (await worker.store.command("exists", worker.keys.outputs(claimed.id))) == 0
    await worker.aclose()


async def test_job_fault_retries_with_backoff_then_fails_with_reason(
    client: Client, settings: Settings, graph: dict[str, Any]
) -> None:
    worker = WorkerQueue(settings.with_overrides(backoff_base_ms=1, backoff_max_ms=2))
    job = client.submit(graph, max_attempts=2)
    first = await claim(worker)
    assert (
        await worker.fail(first, FaultKind.JOB, JobError("RuntimeError", "CUDA oom", "7"))
        == "retrying"
    )
    status = job.status()
    assert (status.state.value, status.attempts, status.position) == ("queued", 1, None)
    assert status.ready_ms is not None
    second = (await worker.claim(["comfyui"], "h", 0, timeout_s=5)).job
    assert second is not None and second.id == job.id and second.attempts == 1
    assert (
        await worker.fail(second, FaultKind.JOB, JobError("RuntimeError", "CUDA oom", "7"))
        == "failed"
    )
    with pytest.raises(JobFailed) as info:
        job.wait(timeout_s=5)
    assert "CUDA oom" in str(info.value) and "node 7" in str(info.value)
    status = job.status()
    assert status.state.value == "failed" and status.attempts == 2
    assert [a.outcome for a in status.timeline] == ["retrying", "failed"]
    assert client.stats().service("comfyui").failed == 1  # type: ignore[union-attr]
    await worker.aclose()


async def test_final_fault_fails_at_once(client: Client, worker: WorkerQueue, graph: Any) -> None:
    job = client.submit(graph, max_attempts=5)
    claimed = await claim(worker)
    error = JobError(
        "prompt_outputs_failed_validation", "Value not in list", "4", kind=FaultKind.FINAL
    )
    assert await worker.fail(claimed, FaultKind.FINAL, error) == "failed"
    status = job.status()
    assert status.attempts == 1 and status.error == error


async def test_infra_fault_requeues_at_the_front_without_charge(
    client: Client, worker: WorkerQueue, graph: Any
) -> None:
    job = client.submit(graph)
    later = client.submit(graph)
    claimed = await claim(worker)
    outcome = await worker.fail(claimed, FaultKind.INFRA, JobError("BackendDown", "restart"))
    assert outcome == "requeued"
    status = job.status()
    assert (status.state.value, status.attempts, status.position) == ("queued", 0, 0)
    assert later.status().position == 1


async def test_wait_returns_promptly_when_job_finishes(
    client: Client, worker: WorkerQueue, graph: Any
) -> None:
    job = client.submit(graph)
    claimed = await claim(worker)
    progress: list[float] = []
    done = threading.Event()
    outcome: list[Any] = []

    def waiter() -> None:
        outcome.append(job.wait(timeout_s=10, on_progress=lambda s: progress.append(s.progress)))
        done.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    await worker.renew(claimed, 0.5, "half")
    await worker.complete(claimed, [])
    assert await asyncio.to_thread(done.wait, 5)
    thread.join()
    assert outcome[0].outputs == ()


def test_wait_times_out_and_cancelled_raises(client: Client, graph: Any) -> None:
    job = client.submit(graph)
    with pytest.raises(TimeoutError):
        job.wait(timeout_s=0.05)
    assert job.cancel() == "cancelled"
    with pytest.raises(JobCancelled):
        job.wait(timeout_s=1)
    with pytest.raises(JobCancelled):
        job.result()


def test_result_of_unfinished_job_is_refused(client: Client, graph: Any) -> None:
    job = client.submit(graph)
    with pytest.raises(InvalidTransition):
        job.result()


async def test_a_job_that_breaks_every_backend_fails_after_max_infra_faults(
    client: Client, settings: Settings, graph: Any
) -> None:
    worker = WorkerQueue(settings.with_overrides(max_infra_faults=3))
    job = client.submit(graph)
    outcomes = []
    for _ in range(3):
        claimed = await claim(worker)
        error = JobError("BackendUnavailable", "prompt vanished")
        outcomes.append(await worker.fail(claimed, FaultKind.INFRA, error))
    assert outcomes == ["requeued", "requeued", "failed"]
    status = job.status()
    assert (status.state.value, status.attempts, status.infra_faults) == ("failed", 0, 3)
    assert status.error is not None and "gave up after 3 faults" in status.error.message
    assert client.retry(job.id) == 0
    assert job.status().infra_faults == 0
    await worker.aclose()
