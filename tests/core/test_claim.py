"""Claims are atomic (no double claim), blocking claims wake on submit, drains and pauses hold."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fleetq import Client, Settings, UnknownService
from fleetq.errors import InvalidArgument
from fleetq.worker import WorkerQueue


async def test_fifty_concurrent_claimers_never_share_a_job(
    client: Client, settings: Settings, graph: dict[str, Any]
) -> None:
    submitted = {client.submit(graph).id for _ in range(200)}
    workers = [WorkerQueue(settings) for _ in range(50)]
    claimed: list[str] = []

    async def claimer(w: WorkerQueue, gpu: int) -> None:
        while True:
            outcome = await w.try_claim(["comfyui"], "h", gpu)
            if outcome.job is None:
                return
            claimed.append(outcome.job.id)

    try:
        await asyncio.gather(*(claimer(w, i) for i, w in enumerate(workers)))
    finally:
        await asyncio.gather(*(w.aclose() for w in workers))
    assert len(claimed) == len(set(claimed)) == 200
    assert set(claimed) == submitted
    assert client.stats().service("comfyui").running == 200  # type: ignore[union-attr]


async def test_blocked_claimer_wakes_on_submit(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    task = asyncio.create_task(worker.claim(["comfyui"], "h", 0, timeout_s=30))
    # Let the claimer find the queue empty and block on the marker.
    while not any(
        b"bzpopmin" in c.get("cmd", "").encode() for c in client.store.redis.client_list()
    ):
        await asyncio.sleep(0.005)
    started = time.perf_counter()
    job = client.submit(graph)
    outcome = await asyncio.wait_for(task, 10)
    elapsed = time.perf_counter() - started
    assert outcome.job is not None and outcome.job.id == job.id
    assert elapsed < 1.0  # woken by the marker, not by the 1 s block timeout re-arming


async def test_claim_returns_lease_and_marks_running(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    job = client.submit(graph, metadata={"user": "ana"}, timeout_s=12)
    outcome = await worker.try_claim(["comfyui"], "gpu-host", 3)
    claimed = outcome.job
    assert claimed is not None
    assert claimed.workflow == graph
    assert claimed.metadata == {"user": "ana"}
    assert claimed.timeout_ms == 12_000
    assert len(claimed.token) == 32
    status = job.status()
    assert (status.state.value, status.host, status.gpu, status.claims) == (
        "running", "gpu-host", 3, 1,
    )  # fmt: skip
    assert status.position is None
    assert status.timeline[0].host == "gpu-host"


async def test_drained_host_and_gpu_claim_nothing(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    client.submit(graph)
    assert client.drain("h1:2")
    assert (await worker.try_claim(["comfyui"], "h1", 2)).drained
    assert client.drain("h2")
    assert (await worker.try_claim(["comfyui"], "h2", 0)).drained
    assert not client.drain("h2")  # already drained
    assert client.stats().drained == ("h1:2", "h2")
    assert client.undrain("h1:2")
    assert (await worker.try_claim(["comfyui"], "h1", 2)).job is not None


async def test_paused_service_is_skipped_until_resumed(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    job = client.submit(graph)
    assert client.pause("comfyui")
    assert client.stats().service("comfyui").paused  # type: ignore[union-attr]
    assert (await worker.try_claim(["comfyui"], "h", 0)).job is None
    waiting = asyncio.create_task(worker.claim(["comfyui"], "h", 0, timeout_s=30))
    await asyncio.sleep(0)  # the claimer finds nothing claimable and blocks
    assert client.resume("comfyui")
    outcome = await asyncio.wait_for(waiting, 10)
    assert outcome.job is not None and outcome.job.id == job.id


@pytest.mark.parametrize("name", ["../x", "comfyui\n", "x" * 10_000, "", "Comfy UI"])
def test_pause_refuses_a_malformed_service_name_and_writes_nothing(
    client: Client, name: str
) -> None:
    with pytest.raises(InvalidArgument):
        client.pause(name)
    with pytest.raises(InvalidArgument):
        client.resume(name)
    assert client.store.command("smembers", client.store.keys.services) == set()
    assert client.store.command("smembers", client.store.keys.paused) == set()


def test_pause_takes_registered_or_known_services_only(
    client: Client, settings: Settings, graph: dict[str, Any]
) -> None:
    with pytest.raises(UnknownService):
        client.pause("never-used")
    assert client.store.command("smembers", client.store.keys.services) == set()
    assert client.pause("a1111") is True  # registered in the settings
    # Known to the fleet (another client submitted to it), though not in these settings.
    other = Client(settings.with_overrides(services=("flux",)))
    try:
        other.submit({"prompt": "x"}, service="flux")
    finally:
        other.close()
    assert client.pause("flux") is True and client.resume("flux") is True
