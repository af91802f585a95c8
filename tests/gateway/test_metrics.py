"""Prometheus metrics: queue depth by band, jobs by state, GPU readings, time histograms."""

from __future__ import annotations

from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from fleetq import Settings
from fleetq.fleet import FleetView, HostView
from fleetq.gateway.state import GATEWAY
from fleetq.metrics import SnapshotCollector, gpu_families, start_metrics_server
from fleetq.model import FaultKind, JobError, Output
from fleetq.records import GpuRecord, HostRecord
from fleetq.store import AsyncStore
from fleetq.worker import WorkerQueue

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


async def scrape(gw: Any) -> Samples:
    async with gw.get("/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return parse(await r.text())


GPU_0 = {
    "index": 0,
    "name": "NVIDIA GeForce RTX 4090",
    "uuid": "GPU-aaaa",
    "health": "healthy",
    "blocked": None,
    "drained": False,
    "job": {"id": "0123456789abcdef", "service": "comfyui", "progress": 0.25},
    "readings": {
        "utilization_gpu_pct": 87,
        "memory_used_mb": 1024,
        "memory_total_mb": 24564,
        "temperature_c": 71,
        "power_w": 301.5,
        "fan_pct": None,
    },
}
GPU_1 = {
    "index": 1,
    "name": "NVIDIA GeForce RTX 3090",
    "uuid": "GPU-bbbb",
    "health": "unhealthy",
    "blocked": "temperature above slowdown",
    "drained": True,
    "job": None,
    "readings": {"utilization_gpu_pct": None, "temperature_c": "hot", "memory_used_mb": True},
}


async def test_metrics_exposition(
    gw: Any, worker: WorkerQueue, settings: Settings, graph: dict[str, Any]
) -> None:
    store = AsyncStore(settings)
    try:
        await store.publish_host("box-1", {"host": "box-1"}, [GPU_0, GPU_1])
    finally:
        await store.aclose()
    await gw.app[GATEWAY].follower.caught_up()  # it follows from the end of the stream
    for priority in (3, 0, 0, -2):
        async with gw.post("/submit", json={"workflow": graph, "priority": priority}) as r:
            assert r.status == 200
    done = (await worker.try_claim(["comfyui"], "box-1", 0)).job
    broken = (await worker.try_claim(["comfyui"], "box-1", 1)).job
    assert done is not None and broken is not None
    await worker.complete(done, [Output("a.png", "image/png", b"x")])
    await worker.fail(broken, FaultKind.FINAL, JobError("E", "bad"))
    await gw.app[GATEWAY].follower.caught_up()

    samples = await scrape(gw)
    depth = {band: value(samples, "fleetq_queue_depth", service="comfyui", band=band)
             for band in ("high", "normal", "low")}  # fmt: skip
    assert depth == {"high": 0, "normal": 1, "low": 1}
    assert value(samples, "fleetq_queue_depth", service="a1111", band="normal") == 0
    jobs = {state: value(samples, "fleetq_jobs", service="comfyui", state=state)
            for state in ("queued", "running", "completed", "failed", "cancelled")}  # fmt: skip
    assert jobs == {"queued": 2, "running": 0, "completed": 1, "failed": 1, "cancelled": 0}
    finished = value(samples, "fleetq_jobs_finished_last_minute", service="comfyui",
                     state="completed")  # fmt: skip
    assert finished == 1
    assert value(samples, "fleetq_service_paused", service="comfyui") == 0
    tenant = {"service": "comfyui", "tenant": "default"}
    assert value(samples, "fleetq_tenant_jobs", state="queued", **tenant) == 2
    assert value(samples, "fleetq_tenant_jobs", state="running", **tenant) == 0
    assert value(samples, "fleetq_queue_oldest_wait_seconds", service="comfyui") is not None

    assert value(samples, "fleetq_job_wait_seconds_count", service="comfyui") == 2
    for outcome in ("completed", "failed"):
        labels = {"service": "comfyui", "outcome": outcome}
        assert value(samples, "fleetq_job_run_seconds_count", **labels) == 1
    assert value(samples, "fleetq_events_total", type="submitted") == 4
    assert value(samples, "fleetq_events_total", type="claimed") == 2

    gpu0 = {"host": "box-1", "gpu": "0"}
    gpu1 = {"host": "box-1", "gpu": "1"}
    assert value(samples, "fleetq_host_up", host="box-1") == 1
    assert value(samples, "fleetq_gpu_utilization_ratio", **gpu0) == 0.87
    assert value(samples, "fleetq_gpu_memory_used_bytes", **gpu0) == 1024 * 1024 * 1024
    assert value(samples, "fleetq_gpu_temperature_celsius", **gpu0) == 71
    assert value(samples, "fleetq_gpu_power_watts", **gpu0) == 301.5
    assert value(samples, "fleetq_gpu_job_progress_ratio", service="comfyui", **gpu0) == 0.25
    assert value(samples, "fleetq_gpu_busy", **gpu0) == 1
    # Not available, or not a number: no series at all, never a made-up 0.
    assert value(samples, "fleetq_gpu_fan_ratio", **gpu0) is None
    assert value(samples, "fleetq_gpu_utilization_ratio", **gpu1) is None
    assert value(samples, "fleetq_gpu_temperature_celsius", **gpu1) is None
    assert value(samples, "fleetq_gpu_memory_used_bytes", **gpu1) is None
    health = {word: value(samples, "fleetq_gpu_health", health=word, **gpu1)
              for word in ("healthy", "degraded", "unhealthy", "lost")}  # fmt: skip
    assert health == {"healthy": 0, "degraded": 0, "unhealthy": 1, "lost": 0}
    assert value(samples, "fleetq_gpu_blocked", **gpu1) == 1
    assert value(samples, "fleetq_gpu_drained", **gpu1) == 1
    info = {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-aaaa", **gpu0}
    assert value(samples, "fleetq_gpu_info", **info) == 1


async def test_each_gateway_has_its_own_registry(
    make_gateway: Any, graph: dict[str, Any], worker: WorkerQueue
) -> None:
    one = await make_gateway()
    await one.app[GATEWAY].follower.caught_up()
    async with one.post("/submit", json={"workflow": graph}) as r:
        assert r.status == 200
    await one.app[GATEWAY].follower.caught_up()
    assert value(await scrape(one), "fleetq_events_total", type="submitted") == 1
    # A second gateway starts at the end of the stream, with its own registry: nothing yet.
    two = await make_gateway()
    assert one.app[GATEWAY].metrics.registry is not two.app[GATEWAY].metrics.registry
    await two.app[GATEWAY].follower.caught_up()
    assert value(await scrape(two), "fleetq_events_total", type="submitted") is None


async def test_openmetrics_on_request(gw: Any) -> None:
    async with gw.get("/metrics", headers={"Accept": "application/openmetrics-text"}) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        assert (await r.text()).rstrip().endswith("# EOF")


async def test_start_metrics_server_for_a_supervisor() -> None:
    """The helper the supervisor uses: its own registry and GPU readings on its own port."""
    registry = CollectorRegistry()
    gpus = SnapshotCollector()
    registry.register(gpus)
    refreshed = 0

    async def refresh() -> None:
        nonlocal refreshed
        refreshed += 1
        gpu = GpuRecord.from_json(GPU_0)
        assert gpu is not None
        host = HostView("box-9", True, 0, HostRecord(), (gpu,))
        gpus.set(gpu_families(FleetView((host,))))

    runner = await start_metrics_server(0, registry, refresh=refresh)
    try:
        host, port = runner.addresses[0][:2]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}/metrics") as r,
        ):
            samples = parse(await r.text())
    finally:
        await runner.cleanup()
    assert refreshed == 1
    assert value(samples, "fleetq_gpu_temperature_celsius", host="box-9", gpu="0") == 71


async def test_open_event_streams_are_a_gauge(make_gateway: Any) -> None:
    gw = await make_gateway(max_streams=7)
    async with gw.get("/v1/events") as one, gw.get("/v1/events") as two:
        assert (one.status, two.status) == (200, 200)
        samples = await scrape(gw)
        assert value(samples, "fleetq_gateway_event_streams") == 2
        assert value(samples, "fleetq_gateway_event_streams_max") == 7
