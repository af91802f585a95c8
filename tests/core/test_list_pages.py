"""Listing the same page again (a dashboard does, every second) gives what Redis holds now:
statuses reused from the previous page only for rows that did not change."""

from __future__ import annotations

from typing import Any

from fleetq import Client
from fleetq.worker import WorkerQueue


async def test_a_page_listed_again_shows_every_change(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    ids = [client.submit(graph).id for _ in range(3)]
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None and claimed.id == ids[0]

    first_running = client.jobs("running")
    first_queued = client.jobs("queued")
    assert [(j.id, j.position) for j in first_queued] == [(ids[1], 0), (ids[2], 1)]

    await worker.renew(claimed, progress=0.5, progress_text="KSampler")
    client.bump(ids[2], 5)
    running = client.jobs("running")
    queued = client.jobs("queued")
    assert [(j.id, j.progress, j.progress_text) for j in running] == [(ids[0], 0.5, "KSampler")]
    assert running[0] != first_running[0]
    assert [(j.id, j.priority, j.position) for j in queued] == [(ids[2], 5, 0), (ids[1], 0, 1)]

    # Unchanged rows read the same again; a job gone from Redis is gone from the page.
    assert client.jobs("queued") == queued
    client.cancel(ids[1])
    assert [j.id for j in client.jobs("queued")] == [ids[2]]
    assert [j.id for j in client.jobs("cancelled")] == [ids[1]]
