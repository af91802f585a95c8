"""Prometheus metrics of a fleet: queue depth by priority band, jobs by state, GPU readings,
and wait/run time histograms.

Gauges are read at scrape time (O(services + hosts) Redis reads, whatever the queue size) and
exposed through a :class:`SnapshotCollector`: prometheus-client collects synchronously, so an
async ``refresh`` fills the collector right before each scrape. Every registry is passed in, never
the global one, so two gateways (or two tests) in one process never share state.

Reuse from the supervisor (its own per-GPU readings, ``--metrics-port``)::

    registry = CollectorRegistry()
    gpus = SnapshotCollector()
    registry.register(gpus)

    async def refresh() -> None:
        host = HostView(host_id, True, now_ms, host_record, tuple(gpu_records))  # fleetq.records
        gpus.set(gpu_families(FleetView((host,))))

    runner = await start_metrics_server(9400, registry, refresh=refresh, host="0.0.0.0")
    ...
    await runner.cleanup()

Nothing here imports the supervisor, the dashboard or NVML.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from fleetq.connection import translate_errors
from fleetq.fleet import FleetView
from fleetq.model import Stats
from fleetq.protocol import text
from fleetq.records import GpuHealth
from fleetq.store import AsyncStore, cancel_safe

if TYPE_CHECKING:
    from aiohttp import web

Refresh = Callable[[], Awaitable[None]]

#: Queue score layout, as ``queue_score`` in ``fleetq/lua/lib/common.lua``:
#: score = (1000 - priority) * 2^41 + submit seq, with 1 <= seq < 2^41.
SCORE_BAND = 2**41
_P0 = 1000 * SCORE_BAND  # lowest score of priority 0
_PM1 = 1001 * SCORE_BAND  # lowest score of priority -1

#: Priority bands as ZCOUNT ranges over a service queue: (name, min score, max score).
#: ``high`` is priority > 0, ``normal`` is 0, ``low`` is < 0.
PRIORITY_BANDS: tuple[tuple[str, str, str], ...] = (
    ("high", "-inf", f"({_P0}"),
    ("normal", str(_P0), f"({_PM1}"),
    ("low", str(_PM1), "+inf"),
)

#: Every health word a supervisor publishes; each GPU gets one series per word (one-hot).
GPU_HEALTH_STATES = tuple(h.value for h in GpuHealth)

WAIT_BUCKETS_S = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
RUN_BUCKETS_S = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class QueueSnapshot:
    """Core stats plus ready-queue counts per service and priority band, read at one scrape."""

    stats: Stats
    #: service -> band name (``high``, ``normal``, ``low``) -> jobs ready to run.
    bands: Mapping[str, Mapping[str, int]]


async def read_priority_bands(
    store: AsyncStore, services: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Count the ready jobs of each service queue per priority band: 3 ZCOUNTs per service
    and requirement class, in one pipeline, each O(log n). Jobs waiting out a retry backoff
    are not in the queue."""
    if not services:
        return {}
    with translate_errors(store.settings, "count the queued jobs"):
        async with store.redis.pipeline(transaction=False) as pipe:
            for service in services:
                pipe.hkeys(store.keys.classes(service))
            classes = [[text(c) for c in found] for found in await cancel_safe(pipe.execute())]
        async with store.redis.pipeline(transaction=False) as pipe:
            for service, ids in zip(services, classes, strict=True):
                for class_id in ["", *ids]:
                    for _name, low, high in PRIORITY_BANDS:
                        pipe.zcount(store.keys.class_queue(service, class_id), low, high)
            counts = await cancel_safe(pipe.execute())
    out: dict[str, dict[str, int]] = {}
    it = iter(counts)
    for service, ids in zip(services, classes, strict=True):
        bands = dict.fromkeys((name for name, _low, _high in PRIORITY_BANDS), 0)
        for _class_id in ["", *ids]:
            for name, _low, _high in PRIORITY_BANDS:
                bands[name] += int(next(it))
        out[service] = bands
    return out


async def read_queue_snapshot(store: AsyncStore) -> QueueSnapshot:
    """Stats of every service (registered or seen) and their priority-band counts."""
    stats = await store.run(store.protocol.stats(store.settings.services))
    bands = await read_priority_bands(store, [s.service for s in stats.services])
    return QueueSnapshot(stats, bands)


def queue_families(snapshot: QueueSnapshot) -> list[Metric]:
    """Gauges of the queues: depth per band, jobs per state, oldest wait, paused, drained."""
    depth = GaugeMetricFamily(
        "fleetq_queue_depth",
        "Jobs ready to run in a service queue, by priority band (high >0, normal =0, low <0)",
        labels=["service", "band"],
    )
    delayed = GaugeMetricFamily(
        "fleetq_queue_delayed", "Queued jobs waiting out a retry backoff", labels=["service"]
    )
    jobs = GaugeMetricFamily(
        "fleetq_jobs",
        "Jobs per state (finished states count the jobs still retained)",
        labels=["service", "state"],
    )
    recent = GaugeMetricFamily(
        "fleetq_jobs_finished_last_minute",
        "Jobs that completed or failed in the last 60 seconds",
        labels=["service", "state"],
    )
    oldest = GaugeMetricFamily(
        "fleetq_queue_oldest_wait_seconds",
        "How long the longest-waiting queued job has waited",
        labels=["service"],
    )
    paused = GaugeMetricFamily(
        "fleetq_service_paused", "1 while a service queue is paused", labels=["service"]
    )
    drained = GaugeMetricFamily(
        "fleetq_drained", "Drained hosts and GPUs (HOST or HOST:GPU)", labels=["target"]
    )
    tenants = GaugeMetricFamily(
        "fleetq_tenant_jobs",
        "Queued (including delayed) and running jobs per tenant; tenants with none have no series",
        labels=["service", "tenant", "state"],
    )
    stats = snapshot.stats
    for s in stats.services:
        for band, count in snapshot.bands.get(s.service, {}).items():
            depth.add_metric([s.service, band], count)
        delayed.add_metric([s.service], s.delayed)
        for state, count in (
            ("queued", s.queued),
            ("running", s.running),
            ("completed", s.completed),
            ("failed", s.failed),
            ("cancelled", s.cancelled),
        ):
            jobs.add_metric([s.service, state], count)
        recent.add_metric([s.service, "completed"], s.completed_last_minute)
        recent.add_metric([s.service, "failed"], s.failed_last_minute)
        wait_ms = s.oldest_wait_ms(stats.now_ms)
        if wait_ms is not None:
            oldest.add_metric([s.service], wait_ms / 1000)
        paused.add_metric([s.service], 1 if s.paused else 0)
        for t in s.tenants:
            tenants.add_metric([s.service, t.tenant, "queued"], t.queued)
            tenants.add_metric([s.service, t.tenant, "running"], t.running)
    for target in stats.drained:
        drained.add_metric([target], 1)
    return [depth, delayed, jobs, recent, oldest, paused, drained, tenants]


# (metric name, help, reading field, scale to base units)
_GPU_READINGS: tuple[tuple[str, str, str, float], ...] = (
    ("fleetq_gpu_utilization_ratio", "GPU busy fraction (0..1)", "utilization_gpu_pct", 0.01),
    (
        "fleetq_gpu_memory_utilization_ratio",
        "Memory-bandwidth busy fraction (0..1), not capacity",
        "utilization_memory_pct",
        0.01,
    ),
    ("fleetq_gpu_memory_used_bytes", "GPU memory in use", "memory_used_mb", _MIB),
    ("fleetq_gpu_memory_total_bytes", "GPU memory size", "memory_total_mb", _MIB),
    ("fleetq_gpu_temperature_celsius", "GPU temperature", "temperature_c", 1),
    (
        "fleetq_gpu_temperature_slowdown_celsius",
        "Temperature at which the GPU slows down",
        "temperature_slowdown_c",
        1,
    ),
    ("fleetq_gpu_power_watts", "GPU power draw", "power_w", 1),
    ("fleetq_gpu_power_limit_watts", "GPU power limit", "power_limit_w", 1),
    ("fleetq_gpu_fan_ratio", "Fan speed fraction (0..1)", "fan_pct", 0.01),
    ("fleetq_gpu_sm_clock_hertz", "SM clock", "sm_clock_mhz", 1e6),
    (
        "fleetq_gpu_ecc_uncorrected_errors",
        "Uncorrected ECC errors since the driver loaded",
        "ecc_uncorrected",
        1,
    ),
)


def gpu_families(fleet: FleetView) -> list[Metric]:
    """Gauges of every host and GPU from the records supervisors publish (see
    :mod:`fleetq.fleet`). A reading a GPU does not support has no series at all."""
    up = GaugeMetricFamily(
        "fleetq_host_up", "1 while a supervisor host publishes its records", labels=["host"]
    )
    info = GaugeMetricFamily(
        "fleetq_gpu_info", "Identity of a GPU (always 1)", labels=["host", "gpu", "name", "uuid"]
    )
    health = GaugeMetricFamily(
        "fleetq_gpu_health",
        "Health verdict of a GPU, one-hot over healthy, degraded, unhealthy, lost",
        labels=["host", "gpu", "health"],
    )
    busy = GaugeMetricFamily("fleetq_gpu_busy", "1 while a GPU runs a job", labels=["host", "gpu"])
    blocked = GaugeMetricFamily(
        "fleetq_gpu_blocked",
        "1 while a GPU's puller does not claim jobs (unhealthy, drained, backend down...)",
        labels=["host", "gpu"],
    )
    drained = GaugeMetricFamily(
        "fleetq_gpu_drained", "1 while a GPU is drained by an operator", labels=["host", "gpu"]
    )
    progress = GaugeMetricFamily(
        "fleetq_gpu_job_progress_ratio",
        "Progress (0..1) of the job a GPU runs",
        labels=["host", "gpu", "service"],
    )
    readings = {
        name: GaugeMetricFamily(name, text, labels=["host", "gpu"])
        for name, text, _field, _scale in _GPU_READINGS
    }
    for host in fleet.hosts:
        up.add_metric([host.host], 1 if host.online else 0)
        for record in host.gpus:
            labels = [host.host, str(record.index)]
            info.add_metric([*labels, record.name or "", record.uuid or ""], 1)
            state = "unknown" if record.health is None else record.health.value
            for word in (*GPU_HEALTH_STATES, *(() if state in GPU_HEALTH_STATES else (state,))):
                health.add_metric([*labels, word], 1 if word == state else 0)
            job = record.job
            busy.add_metric(labels, 0 if job is None else 1)
            if job is not None and job.progress is not None:
                progress.add_metric([*labels, job.service], job.progress)
            blocked.add_metric(labels, 1 if record.blocked else 0)
            drained.add_metric(labels, 1 if record.drained else 0)
            for name, _text, field, scale in _GPU_READINGS:
                value = record.reading(field)
                if value is not None:
                    readings[name].add_metric(labels, value * scale)
    return [up, info, health, busy, blocked, drained, progress, *readings.values()]


class SnapshotCollector:
    """A prometheus-client collector that yields the families of the last :meth:`set`.

    Collection is synchronous in prometheus-client; fill this from async code right before a
    scrape (see :func:`metrics_handler`).
    """

    def __init__(self) -> None:
        self._families: list[Metric] = []

    def set(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return list(self._families)

    def describe(self) -> Iterable[Metric]:
        # Names are only known after a refresh; describing nothing skips the registry's
        # duplicate check at registration instead of running a collection there.
        return []


class JobTimings:
    """Wait-time and run-time histograms plus an event counter, in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.wait_seconds = Histogram(
            "fleetq_job_wait_seconds",
            "Time from enqueue to claim, per claim (requeued jobs count from their enqueue)",
            ["service"],
            buckets=WAIT_BUCKETS_S,
            registry=registry,
        )
        self.run_seconds = Histogram(
            "fleetq_job_run_seconds",
            "Time from the last claim to the end of a job that completed or failed",
            ["service", "outcome"],
            buckets=RUN_BUCKETS_S,
            registry=registry,
        )
        self.events = Counter(
            "fleetq_events",
            "Fleet events seen on the event stream, by type",
            ["type"],
            registry=registry,
        )


def metrics_handler(
    registry: CollectorRegistry, refresh: Refresh | None = None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler serving ``registry`` (Prometheus text or OpenMetrics, as the scraper
    asks), awaiting ``refresh`` first so scrape-time gauges are current."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.StreamResponse:
        if refresh is not None:
            await refresh()
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(registry), headers={"Content-Type": content_type})

    return handler


async def start_metrics_server(
    port: int,
    registry: CollectorRegistry,
    *,
    refresh: Refresh | None = None,
    host: str = "127.0.0.1",
) -> web.AppRunner:
    """Serve ``GET /metrics`` on ``host:port`` from the running event loop.

    Returns the runner; ``await runner.cleanup()`` stops it. Pass ``host="0.0.0.0"`` to let a
    Prometheus on another machine scrape it.
    """
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(registry, refresh))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


__all__ = [
    "GPU_HEALTH_STATES",
    "PRIORITY_BANDS",
    "SCORE_BAND",
    "JobTimings",
    "QueueSnapshot",
    "SnapshotCollector",
    "gpu_families",
    "metrics_handler",
    "queue_families",
    "read_priority_bands",
    "read_queue_snapshot",
    "start_metrics_server",
]
