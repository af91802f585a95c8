"""The asyncio client offers the same API as the synchronous one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from fleetq import AsyncClient, JobFailed
from fleetq.model import FaultKind, JobError, Output
from fleetq.worker import WorkerQueue


async def test_async_submit_wait_and_admin(
    aclient: AsyncClient, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    job = await aclient.submit(graph, priority=2, metadata={"tag": "a"})
    other = await aclient.submit(graph)
    assert (await job.status()).position == 0
    assert await aclient.bump(other.id, 3) == 0
    assert [j.id for j in await aclient.jobs()] == [other.id, job.id]
    assert await aclient.pause("comfyui") and await aclient.resume("comfyui")

    seen: list[float] = []

    async def on_progress(status: Any) -> None:
        seen.append(status.progress)

    waiting = asyncio.create_task(job.wait(timeout_s=10, on_progress=on_progress))
    first = (await worker.try_claim(["comfyui"], "h", 0)).job
    second = (await worker.try_claim(["comfyui"], "h", 1)).job
    assert first is not None and second is not None and second.id == job.id
    await worker.renew(second, 0.5, "half")
    await worker.complete(second, [Output("a.png", "image/png", b"png")])
    result = await asyncio.wait_for(waiting, 10)
    assert result.outputs[0].data == b"png"
    assert seen[0] == 0.0

    await worker.fail(first, FaultKind.FINAL, JobError("E", "broken"))
    with pytest.raises(JobFailed):
        await (await aclient.get(other.id)).wait(timeout_s=5)
    stats = await aclient.stats()
    assert (stats.total("completed"), stats.total("failed")) == (1, 1)
    assert await aclient.retry(other.id) == 0
    assert await aclient.cancel(other.id) == "cancelled"


async def test_async_send_control_reaches_the_supervisors_command_stream(
    aclient: AsyncClient,
) -> None:
    entry_id = await aclient.send_control("gpu-07", {"type": "fault", "gpu": 2, "spec": "xid=79"})
    entries = await aclient.store.read_control("gpu-07", "0-0", None)
    assert [e[0] for e in entries] == [entry_id]
    command = json.loads(entries[0][1]["command"])
    assert command == {"type": "fault", "gpu": 2, "spec": "xid=79", "by": "client"}
