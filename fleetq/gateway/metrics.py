"""``GET /metrics``: the gateway's Prometheus registry.

Gauges (queues, jobs by state, GPUs) are read from Redis at each scrape; the wait-time and
run-time histograms and the event counter are fed by the :class:`EventFollower` task. Each
application has its own registry, so nothing leaks between gateways or tests in one process.
"""

from __future__ import annotations

from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Gauge

from fleetq.gateway.fanout import StreamFanout
from fleetq.metrics import (
    JobTimings,
    SnapshotCollector,
    gpu_families,
    metrics_handler,
    queue_families,
    read_queue_snapshot,
)
from fleetq.store import AsyncStore


class GatewayMetrics:
    """One registry: scrape-time gauges plus the follower-fed histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.gauges = SnapshotCollector()
        self.registry.register(self.gauges)
        self.timings = JobTimings(self.registry)

    async def refresh(self, store: AsyncStore) -> None:
        """Read queue counts and fleet records (O(services + hosts)) into the gauges."""
        snapshot = await read_queue_snapshot(store)
        view = await store.fleet()
        self.gauges.set([*queue_families(snapshot), *gpu_families(view)])

    def watch_streams(self, fanout: StreamFanout) -> None:
        """Gauges of the open event streams and their cap, read at scrape time."""
        open_streams = Gauge(
            "fleetq_gateway_event_streams",
            "Event streams this gateway serves now",
            registry=self.registry,
        )
        open_streams.set_function(lambda: fanout.subscribers)
        cap = Gauge(
            "fleetq_gateway_event_streams_max",
            "The most event streams this gateway serves (--max-streams)",
            registry=self.registry,
        )
        cap.set(fanout.max_subscribers)

    def handler(self, store: AsyncStore) -> Handler:
        """The ``/metrics`` handler; each scrape refreshes the gauges first."""

        async def refresh() -> None:
            await self.refresh(store)

        return metrics_handler(self.registry, refresh)
