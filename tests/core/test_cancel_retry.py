"""Cancel (queued and running), retry, idempotent submit, retention and the event stream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fleetq import Client, InvalidTransition, JobNotFound, Settings, StaleLease
from fleetq.model import FaultKind, JobError
from fleetq.worker import WorkerQueue


def test_cancel_queued_job_removes_it_at_once(client: Client, graph: Any) -> None:
    a = client.submit(graph)
    b = client.submit(graph)
    assert client.cancel(a.id) == "cancelled"
    assert a.status().state.value == "cancelled"
    assert b.status().position == 0
    stats = client.stats().service("comfyui")
    assert stats is not None and (stats.queued, stats.cancelled) == (1, 1)
    assert client.cancel(a.id) == "cancelled"  # idempotent


async def test_cancel_running_job_tells_the_owner(
    client: Client, worker: WorkerQueue, graph: Any
) -> None:
    job = client.submit(graph)
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None
    last_id = await worker.store.last_job_event_id(job.id)
    watch = asyncio.create_task(worker.job_events(job.id, last_id, block_ms=5000))
    await asyncio.sleep(0)
    assert client.cancel(job.id) == "cancelling"
    events = await asyncio.wait_for(watch, 5)
    assert [e[1]["type"] for e in events] == ["cancel_requested"]
    assert job.status().cancel_requested
    assert await worker.renew(claimed) is True  # the heartbeat says so too
    await worker.ack_cancel(claimed)
    assert job.status().state.value == "cancelled"
    with pytest.raises(StaleLease):
        await worker.complete(claimed, [])


async def test_failure_after_cancel_request_ends_cancelled(
    client: Client, worker: WorkerQueue, graph: Any
) -> None:
    job = client.submit(graph)
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None
    client.cancel(job.id)
    outcome = await worker.fail(claimed, FaultKind.JOB, JobError("Interrupted", "interrupted"))
    assert outcome == "cancelled"


async def test_cancel_of_finished_job_is_refused(
    client: Client, worker: WorkerQueue, graph: Any
) -> None:
    job = client.submit(graph)
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None
    await worker.complete(claimed, [])
    with pytest.raises(InvalidTransition, match="completed"):
        client.cancel(job.id)
    with pytest.raises(InvalidTransition):
        client.bump(job.id, 5)
    with pytest.raises(InvalidTransition):
        client.retry(job.id)


async def test_retry_failed_job_requeues_with_fresh_attempts(
    client: Client, worker: WorkerQueue, graph: Any
) -> None:
    job = client.submit(graph, max_attempts=1)
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None
    await worker.fail(claimed, FaultKind.JOB, JobError("E", "bad luck"))
    assert job.status().state.value == "failed"
    assert client.retry(job.id) == 0
    status = job.status()
    assert (status.state.value, status.attempts) == ("queued", 0)
    assert client.stats().service("comfyui").failed == 0  # type: ignore[union-attr]
    again = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert again is not None and again.id == job.id


def test_retry_cancelled_job(client: Client, graph: Any) -> None:
    job = client.submit(graph)
    client.cancel(job.id)
    assert client.retry(job.id) == 0
    assert job.status().state.value == "queued"


def test_unknown_job_ids(client: Client) -> None:
    for action in (client.status, client.cancel, client.retry, client.get):
        with pytest.raises(JobNotFound):
            action("0123456789abcdef")
    with pytest.raises(JobNotFound):
        client.bump("0123456789abcdef", 1)


def test_idempotent_submit_returns_the_existing_job(client: Client, graph: Any) -> None:
    first = client.submit(graph, idempotency_key="order-42")
    again = client.submit({"1": {"class_type": "Other", "inputs": {}}}, idempotency_key="order-42")
    other = client.submit(graph, idempotency_key="order-43")
    assert again.id == first.id != other.id
    assert client.stats().service("comfyui").queued == 2  # type: ignore[union-attr]


async def test_finished_jobs_expire_after_retention(
    client: Client, settings: Settings, graph: Any
) -> None:
    short = settings.with_overrides(retention_s=1)
    with Client(short) as c:
        job = c.submit(graph, idempotency_key="k1")
        c.cancel(job.id)
    keys = client.store.keys
    ttl = client.store.command("pttl", keys.job(job.id))
    assert 0 < ttl <= 1000
    assert 0 < client.store.command("pttl", keys.idempotency("k1")) <= 1000


def test_event_stream_records_transitions(client: Client, graph: Any) -> None:
    job = client.submit(graph)
    client.bump(job.id, 7)
    client.cancel(job.id)
    client.retry(job.id)
    events = client.store.read_events("0-0", block_ms=None)
    kinds = [(e[1]["type"], e[1]["job"]) for e in events]
    assert kinds == [
        ("submitted", job.id), ("bumped", job.id), ("cancelled", job.id), ("retried", job.id),
    ]  # fmt: skip
    bumped = events[1][1]
    assert (bumped["from"], bumped["to"]) == ("0", "7")


def test_event_stream_is_capped(settings: Settings, graph: Any) -> None:
    with Client(settings.with_overrides(events_maxlen=100)) as c:
        for _ in range(400):
            c.submit(graph)
        assert c.store.command("xlen", c.store.keys.events) < 400
