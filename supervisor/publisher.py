"""Publishes this machine to the dashboard every second: a host record and one record per GPU
(readings, health and its reasons, why the puller is blocked, the current job and progress),
each expiring after a few seconds so a dead machine shows as offline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence

from fleetq import __version__
from fleetq.errors import RedisUnavailable
from fleetq.fleet import FleetView, HostView
from fleetq.records import BlockedBy, GpuHealth, GpuRecord, HostRecord, HostState, PullerStatus
from fleetq.urls import safe_url
from fleetq.worker import WorkerQueue
from supervisor.config import SupervisorConfig
from supervisor.gpu.monitor import GpuMonitor, GpuStatus
from supervisor.gpu.readings import GpuIdentity
from supervisor.puller import Puller

log = logging.getLogger(__name__)


def gpu_record(identity: GpuIdentity, status: GpuStatus, puller: Puller | None) -> GpuRecord:
    reading = status.reading
    readings = reading.to_json_dict()
    readings["ecc_uncorrected"] = reading.ecc_volatile_uncorrected
    state = puller.state if puller is not None else None
    return GpuRecord(
        index=identity.index,
        name=identity.name,
        uuid=identity.uuid,
        health=GpuHealth.LOST if reading.lost else GpuHealth(status.verdict.status),
        reasons=tuple(status.verdict.reasons),
        status=state.status if state else PullerStatus.UNMANAGED,
        blocked=state.blocked if state else "no puller for this GPU",
        blocked_by=state.blocked_by if state else BlockedBy.NO_PULLER,
        drained=bool(state and state.drained),
        services=tuple(sorted(puller.backends)) if puller else (),
        backends={s: safe_url(b.url) for s, b in puller.backends.items()} if puller else {},
        job=state.job_record() if state else None,
        jobs_done=state.jobs_done if state else 0,
        readings=readings,
        **(puller.profile.record() if puller else {}),
    )


def host_record(
    config: SupervisorConfig, started_ms: int, gpus: Sequence[GpuIdentity], draining: bool,
    simulated: bool,
) -> HostRecord:  # fmt: skip
    return HostRecord(
        host=config.host_id,
        version=__version__,
        pid=os.getpid(),
        started_ms=started_ms,
        heartbeat_ms=int(time.time() * 1000),
        gpus=len(gpus),
        simulated=simulated,
        state=HostState.DRAINING if draining else HostState.RUNNING,
        backends={b.service: safe_url(b.url_template) for b in config.backends},
    )


class Publisher:
    """Samples every GPU and publishes the records once per interval."""

    def __init__(
        self,
        config: SupervisorConfig,
        queue: WorkerQueue,
        monitor: GpuMonitor,
        gpus: Sequence[GpuIdentity],
        pullers: Mapping[int, Puller],
        draining: asyncio.Event,
    ) -> None:
        self.config = config
        self.queue = queue
        self.monitor = monitor
        self.gpus = list(gpus)
        self.pullers = pullers
        self.draining = draining
        self.started_ms = int(time.time() * 1000)
        self.ttl_ms = max(3_000, int(config.publish_interval_s * 5_000))
        #: The latest records, also served by the metrics endpoint.
        self.last_host = HostRecord()
        self.last_gpus: list[GpuRecord] = []

    async def publish_once(self) -> None:
        statuses = {s.reading.index: s for s in await self.monitor.sample_and_judge(
            self.config.min_free_mb)}  # fmt: skip
        records = [
            gpu_record(g, statuses[g.index], self.pullers.get(g.index))
            for g in self.gpus
            if g.index in statuses
        ]
        host = host_record(self.config, self.started_ms, self.gpus, self.draining.is_set(),
                           self.monitor.simulated)  # fmt: skip
        self.last_host, self.last_gpus = host, records
        documents: dict[str, str] = {}
        for puller in self.pullers.values():
            documents.update(puller.profile.documents())
        await self.queue.publish_host(self.config.host_id, host, records, ttl_ms=self.ttl_ms)
        await self.queue.publish_capabilities(documents, ttl_ms=self.ttl_ms)

    async def run(self) -> None:
        down = False
        while True:
            try:
                await self.publish_once()
                if down:
                    log.info("publisher: Redis is back")
                down = False
            except RedisUnavailable as e:
                if not down:
                    log.warning("publisher: %s", e)
                down = True
            except Exception:
                log.exception("publisher: unexpected error")
            await asyncio.sleep(self.config.publish_interval_s)  # the publishing period

    def view(self) -> FleetView:
        """This machine as a one-host fleet view (for the metrics endpoint)."""
        now_ms = int(time.time() * 1000)
        host = HostView(self.config.host_id, True, now_ms, self.last_host, tuple(self.last_gpus))
        return FleetView((host,))

    async def withdraw(self) -> None:
        """Remove this host's records at a clean exit, so it shows offline at once."""
        with contextlib.suppress(RedisUnavailable):
            await self.queue.withdraw_host(self.config.host_id)
