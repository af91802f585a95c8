"""Leases: renewals extend them, expiry requeues through the reaper, stale tokens are refused."""

from __future__ import annotations

from typing import Any

import pytest

from fleetq import Client, Settings, StaleLease
from fleetq.model import FaultKind, JobError, Output
from fleetq.worker import WorkerQueue


@pytest.fixture
def short_lease(settings: Settings) -> Settings:
    return settings.with_overrides(lease_ms=50, max_lost_leases=2)


async def expire_all_leases(worker: WorkerQueue) -> None:
    """Push every lease into the past (instead of sleeping past it)."""
    keys = worker.keys
    members = await worker.store.command("zrange", keys.leases, 0, -1)
    if members:
        await worker.store.command("zadd", keys.leases, {m: 0 for m in members})


async def test_expired_lease_is_requeued_without_charging_an_attempt(
    client: Client, settings: Settings, graph: dict[str, Any]
) -> None:
    job = client.submit(graph)
    dead = WorkerQueue(settings)
    claimed = (await dead.try_claim(["comfyui"], "dead-host", 0)).job
    assert claimed is not None
    await expire_all_leases(dead)
    reaped = await dead.reap("reaper-1")
    assert (reaped.ran, reaped.requeued) == (True, 1)
    status = job.status()
    assert status.state.value == "queued"
    assert (status.attempts, status.lost_leases, status.position) == (0, 1, 0)
    assert status.timeline[-1].outcome == "lost"
    assert "dead-host:0" in (status.timeline[-1].detail or "")

    # The dead puller comes back: every write with its old token is refused.
    with pytest.raises(StaleLease):
        await dead.renew(claimed, 0.5)
    with pytest.raises(StaleLease):
        await dead.complete(claimed, [Output("x.png", "image/png", b"x")])
    with pytest.raises(StaleLease):
        await dead.fail(claimed, FaultKind.JOB, JobError("E", "late"))

    # Another GPU takes it; the old token stays refused even though the job runs again.
    live = (await dead.try_claim(["comfyui"], "live-host", 1)).job
    assert live is not None and live.id == job.id and live.token != claimed.token
    with pytest.raises(StaleLease):
        await dead.complete(claimed, [])
    await dead.complete(live, [])
    assert job.status().state.value == "completed"
    await dead.aclose()


async def test_a_job_that_loses_its_worker_too_often_fails(
    client: Client, short_lease: Settings, graph: dict[str, Any]
) -> None:
    job = client.submit(graph)
    worker = WorkerQueue(short_lease)
    for _ in range(2):
        assert (await worker.try_claim(["comfyui"], "h", 0)).job is not None
        await expire_all_leases(worker)
        await worker.store.command("delete", worker.keys.reaper_lock)
        await worker.reap("r")
    status = job.status()
    assert status.state.value == "failed"
    assert status.error is not None and status.error.type == "LeaseLost"
    assert status.attempts == 0
    await worker.aclose()


async def test_renew_extends_lease_and_records_progress(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    job = client.submit(graph)
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None
    before = job.status()
    assert await worker.renew(claimed, 0.25, "node 2/8") is False
    status = job.status()
    assert (status.progress, status.progress_text) == (0.25, "node 2/8")
    lease = await worker.store.command("zscore", worker.keys.leases, job.id)
    assert lease >= (before.started_ms or 0) + worker.settings.lease_ms


async def test_reaper_is_single_flight(client: Client, worker: WorkerQueue) -> None:
    first = await worker.reap("a")
    second = await worker.reap("b")
    assert first.ran and not second.ran


async def test_reaper_waits_after_an_outage(
    client: Client, worker: WorkerQueue, graph: Any
) -> None:
    client.submit(graph)
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None
    await worker.reap("a")
    # Simulate a long gap since the last pass (as after Redis itself was down).
    await worker.store.command("set", worker.keys.reaper_last, 1)
    await worker.store.command("delete", worker.keys.reaper_lock)
    await expire_all_leases(worker)
    outcome = await worker.reap("a")
    assert not outcome.ran and outcome.grace_until_ms is not None
    # The live puller renews in the grace window and keeps its job.
    assert await worker.renew(claimed) is False
    await worker.store.command("delete", worker.keys.reaper_lock, worker.keys.reaper_grace)
    outcome = await worker.reap("a")
    assert outcome.ran and outcome.requeued == 0


async def test_a_resent_finish_is_answered_like_the_first(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    """A finishing write whose reply was lost is sent again with the same token."""
    done, failed = client.submit(graph), client.submit(graph, max_attempts=1)
    first = (await worker.try_claim(["comfyui"], "h", 0)).job
    second = (await worker.try_claim(["comfyui"], "h", 1)).job
    assert first is not None and second is not None
    await worker.complete(first, [])
    await worker.complete(first, [])  # the resend: accepted, nothing changes
    assert await worker.fail(second, FaultKind.JOB, JobError("E", "x")) == "failed"
    assert await worker.fail(second, FaultKind.JOB, JobError("E", "x")) == "failed"
    with pytest.raises(StaleLease):  # a different finish with the same token is still refused
        await worker.fail(first, FaultKind.JOB, JobError("E", "late"))
    with pytest.raises(StaleLease):
        await worker.complete(second, [])
    assert done.status().state.value == "completed" and failed.status().state.value == "failed"
    assert len(done.status().timeline) == 1
