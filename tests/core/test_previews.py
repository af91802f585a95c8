"""Live previews in Redis: one per running job, capped, short-lived, announced on the job's
stream, gone once the job stops running, never among its outputs. Real redis-server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fleetq import AsyncClient, Client, JobStatus, Settings, StaleLease
from fleetq.cli.render import to_jsonable
from fleetq.model import ClaimedJob, FaultKind, JobError, Output
from fleetq.previews import PreviewFollower, preview_from_hash, sniff_image_type
from fleetq.worker import WorkerQueue
from supervisor.sim.png import encode_solid_png
from tests.helpers import eventually

BODY = {"prompt": "a lighthouse", "steps": 4}
PNG = encode_solid_png(16, 16, (200, 100, 50))
RESULT = Output("out.png", "image/png", encode_solid_png(32, 32, (1, 2, 3)))


async def _running(client: AsyncClient, worker: WorkerQueue) -> ClaimedJob:
    await client.submit(BODY, service="a1111")
    claimed = (await worker.try_claim(["a1111"], "gpu-host", 0)).job
    assert claimed is not None
    return claimed


async def test_a_preview_is_kept_announced_and_dropped_when_the_job_completes(
    aclient: AsyncClient, worker: WorkerQueue
) -> None:
    job = await _running(aclient, worker)
    assert await aclient.preview(job.id) is None
    last_id = await worker.store.last_job_event_id(job.id)
    written = await worker.set_preview(job, PNG, "image/png")
    assert written.stored and written.size == len(PNG)

    preview = await aclient.preview(job.id)
    assert preview is not None
    assert (preview.job_id, preview.data, preview.content_type) == (job.id, PNG, "image/png")
    assert preview.at_ms == written.at_ms and preview.extension == ".png"
    [(_, event)] = await worker.job_events(job.id, last_id, 100)
    assert event["type"] == "preview" and event["size"] == str(len(PNG))
    # Announced on the job's stream only: the fleet log is not flooded with frames.
    fleet = await worker.store.read_events("0-0", None)
    assert "preview" not in {fields["type"] for _, fields in fleet}

    await worker.complete(job, [RESULT])
    assert await aclient.preview(job.id) is None
    assert not await worker.store.command("exists", worker.keys.preview(job.id))
    result = await aclient.result(job.id)
    assert [o.data for o in result.outputs] == [RESULT.data]


@pytest.mark.parametrize("ending", ["fail_final", "requeue", "ack_cancel"])
async def test_every_way_out_of_running_drops_the_preview(
    aclient: AsyncClient, worker: WorkerQueue, ending: str
) -> None:
    job = await _running(aclient, worker)
    await worker.set_preview(job, PNG, "image/png")
    if ending == "fail_final":
        await worker.fail(job, FaultKind.FINAL, JobError("Bad", "bad"))
    elif ending == "requeue":
        assert await worker.fail(job, FaultKind.INFRA, JobError("Gone", "gpu")) == "requeued"
    else:
        await aclient.cancel(job.id)
        await worker.ack_cancel(job)
    assert await aclient.preview(job.id) is None


async def test_a_preview_from_a_stale_lease_is_refused_and_writes_nothing(
    aclient: AsyncClient, worker: WorkerQueue
) -> None:
    job = await _running(aclient, worker)
    await worker.fail(job, FaultKind.INFRA, JobError("Gone", "gpu"))  # requeued
    with pytest.raises(StaleLease):
        await worker.set_preview(job, PNG, "image/png")
    assert not await worker.store.command("exists", worker.keys.preview(job.id))


async def test_an_oversized_preview_is_refused_and_writes_nothing(
    settings: Settings, aclient: AsyncClient
) -> None:
    queue = WorkerQueue(settings.with_overrides(preview_max_bytes=len(PNG) - 1))
    try:
        job = await _running(aclient, queue)
        last_id = await queue.store.last_job_event_id(job.id)
        written = await queue.set_preview(job, PNG, "image/png")
        assert not written.stored and written.size == len(PNG)
        assert not await queue.store.command("exists", queue.keys.preview(job.id))
        assert await queue.job_events(job.id, last_id, 1) == []
    finally:
        await queue.aclose()


async def test_a_preview_expires_after_its_ttl(settings: Settings, aclient: AsyncClient) -> None:
    queue = WorkerQueue(settings.with_overrides(preview_ttl_ms=300))
    try:
        job = await _running(aclient, queue)
        await queue.set_preview(job, PNG, "image/png")
        assert await aclient.preview(job.id) is not None
        ttl_ms = await queue.store.command("pttl", queue.keys.preview(job.id))
        assert 0 < ttl_ms <= 300
        await eventually(lambda: _no_preview(aclient, job.id), "the preview to expire")
        assert (await aclient.status(job.id)).state.value == "running"
    finally:
        await queue.aclose()


async def _no_preview(client: AsyncClient, job_id: str) -> bool:
    return await client.preview(job_id) is None


async def test_async_wait_hands_new_previews_to_on_progress(
    aclient: AsyncClient, worker: WorkerQueue
) -> None:
    job = await _running(aclient, worker)
    seen: list[JobStatus] = []
    got_preview = asyncio.Event()

    def on_progress(status: JobStatus) -> None:
        seen.append(status)
        if status.preview is not None:
            got_preview.set()

    waiting = asyncio.create_task((await aclient.get(job.id)).wait(10, on_progress))
    await worker.set_preview(job, PNG, "image/png")
    await asyncio.wait_for(got_preview.wait(), 10)
    await worker.complete(job, [RESULT])
    result = await waiting
    previews = [s.preview for s in seen if s.preview is not None]
    assert previews[-1].data == PNG and previews[-1].job_id == job.id
    assert [o.data for o in result.outputs] == [RESULT.data]


async def test_sync_wait_hands_previews_to_on_progress_and_can_leave_them_out(
    client: Client, aclient: AsyncClient, worker: WorkerQueue
) -> None:
    job = await _running(aclient, worker)
    await worker.set_preview(job, PNG, "image/png")
    seen: list[Any] = []
    without: list[Any] = []
    handle = client.get(job.id)
    with_previews = asyncio.create_task(
        asyncio.to_thread(handle.wait, 10, lambda s: seen.append(s.preview))
    )
    left_out = asyncio.create_task(
        asyncio.to_thread(handle.wait, 10, lambda s: without.append(s.preview), previews=False)
    )
    await eventually(lambda: seen and without, "both waiters to report progress")
    await worker.complete(job, [RESULT])
    await with_previews
    await left_out
    assert seen[0] is not None and seen[0].data == PNG
    assert without == [None] * len(without)


async def test_preview_follower_reads_only_when_told_and_only_while_running(
    aclient: AsyncClient, worker: WorkerQueue
) -> None:
    running = await aclient.status((await _running(aclient, worker)).id)
    queued = await aclient.status((await aclient.submit(BODY, service="a1111")).id)
    follower = PreviewFollower()
    assert follower.wants_read(running)  # a preview may be there already
    follower.fetched(None)
    assert not follower.wants_read(running)
    follower.feed([("1-0", {"type": "progress"})])
    assert not follower.wants_read(running)
    follower.feed([("2-0", {"type": "preview"})])
    assert follower.wants_read(running)
    assert not follower.wants_read(queued)
    assert not PreviewFollower(include=False).wants_read(running)


def test_preview_records_read_back_only_when_whole() -> None:
    assert preview_from_hash("j", {}) is None
    assert preview_from_hash("j", {b"content_type": b"image/png"}) is None
    whole = preview_from_hash("j", {b"data": PNG, b"content_type": b"image/png", b"ms": b"7"})
    assert whole is not None and whole.at_ms == 7
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image_type(b"<html>") is None


async def test_a_status_json_form_never_carries_the_preview(
    aclient: AsyncClient, worker: WorkerQueue
) -> None:
    job = await _running(aclient, worker)
    await worker.set_preview(job, PNG, "image/png")
    follower = PreviewFollower()
    status = await aclient.status(job.id)
    follower.fetched(await aclient.preview(job.id))
    shown = follower.attach(status)
    assert shown.preview is not None and shown == status  # same job snapshot
    assert "preview" not in to_jsonable(shown) and to_jsonable(shown) == to_jsonable(status)
