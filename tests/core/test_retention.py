"""After retention and a reaper pass a namespace holds only the keys of live jobs and the fixed
keys, whatever path each finished job took (nothing leaks, e.g. the event stream of a job
cancelled while queued)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from key_audit import audit_keys

from fleetq import Client, Settings
from fleetq.model import FaultKind, JobError, Output
from fleetq.worker import WorkerQueue


@pytest.fixture
def brief(settings: Settings) -> Settings:
    """Finished jobs and outputs kept one second; a job fails at its second lost lease."""
    return settings.with_overrides(
        retention_s=1, output_ttl_s=1, max_lost_leases=2, backoff_base_ms=60_000
    )


async def expire_lease(worker: WorkerQueue, job_id: str) -> None:
    await worker.store.command("zadd", worker.keys.leases, {job_id: 0})


async def reap(worker: WorkerQueue) -> Any:
    await worker.store.command("delete", worker.keys.reaper_lock)  # single-flight lock
    return await worker.store.run(worker.protocol.reap("audit", lock_ms=10, gap_ms=600_000))


async def test_every_transition_path_leaves_only_live_and_fixed_keys(
    brief: Settings, graph: dict[str, Any]
) -> None:
    client = Client(brief)
    worker = WorkerQueue(brief)
    svc = ["comfyui"]

    async def claim(gpu: int = 0) -> Any:
        job = (await worker.try_claim(svc, "audit-host", gpu)).job
        assert job is not None
        return job

    # Queued, then cancelled (with and without an idempotency key).
    client.submit(graph).cancel()
    client.submit(graph, idempotency_key="audit-cancel").cancel()
    # Completed with outputs, and without.
    client.submit(graph)
    await worker.complete(await claim(), [Output("a.png", "image/png", b"png")])
    client.submit(graph, idempotency_key="audit-done")
    await worker.complete(await claim(), [])
    # A job fault with attempts left (delayed), then cancelled while it waits out its backoff.
    delayed = client.submit(graph, max_attempts=2)
    assert await worker.fail(await claim(), FaultKind.JOB, JobError("E", "x")) == "retrying"
    assert delayed.cancel() == "cancelled"
    # Failed for good, retried by an operator, requeued by an infrastructure fault, cancelled
    # while running and acknowledged by its puller.
    retried = client.submit(graph, max_attempts=1)
    assert await worker.fail(await claim(), FaultKind.JOB, JobError("E", "x")) == "failed"
    assert client.retry(retried.id) == 0
    assert await worker.fail(await claim(), FaultKind.INFRA, JobError("E", "gpu")) == "requeued"
    running = await claim()
    assert retried.cancel() == "cancelling"
    assert await worker.renew(running) is True
    await worker.ack_cancel(running)
    # Cancelled while running, its puller gone: the reaper finishes it.
    orphan = client.submit(graph)
    await claim()
    orphan.cancel()
    await expire_lease(worker, orphan.id)
    assert (await reap(worker)).cancelled == 1
    # Lost twice: requeued once, then failed with LeaseLost.
    lost = client.submit(graph)
    for _ in range(2):
        await claim()
        await expire_lease(worker, lost.id)
        await reap(worker)
    assert lost.status().state.value == "failed"
    # Operator actions that touch no job.
    client.pause("comfyui"), client.resume("comfyui")
    client.drain("audit-host:3"), client.undrain("audit-host:3")
    # Live jobs: one running, one queued (bumped), one waiting out a retry backoff.
    live_running = client.submit(graph)
    held = await claim(1)
    assert held.id == live_running.id
    waiting = client.submit(graph, max_attempts=3)
    assert await worker.fail(await claim(2), FaultKind.JOB, JobError("E", "x")) == "retrying"
    queued = client.submit(graph, idempotency_key="audit-live")
    client.bump(queued.id, 5)
    live = {live_running.id, queued.id, waiting.id}

    r = redis.Redis.from_url(brief.redis_url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while True:  # retention is a clock: nothing to wait on but the keys expiring
            await reap(worker)
            problems = audit_keys(r, worker.keys, live)
            if not problems or loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
        assert problems == []
        for job_id in live:  # the live jobs kept everything
            assert r.exists(worker.keys.job(job_id))
        assert r.exists(worker.keys.job_events(held.id), worker.keys.idempotency("audit-live"))
    finally:
        r.close()
        client.close()
        await worker.aclose()
