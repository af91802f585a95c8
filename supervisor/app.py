"""The supervisor of one GPU machine: a puller per GPU, plus upkeep (publisher, reaper, operator
control), under one asyncio loop. SIGTERM drains: no new claims, running jobs get ``grace_s`` to
finish, and what is left is interrupted and requeued without charging an attempt."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from fleetq.metrics import SnapshotCollector, gpu_families, start_metrics_server
from fleetq.worker import WorkerQueue
from supervisor.backends.base import Backend
from supervisor.capabilities import vram_gb
from supervisor.config import SupervisorConfig
from supervisor.execution import StopReason
from supervisor.gpu.backend import open_gpu_backend
from supervisor.gpu.monitor import GpuMonitor
from supervisor.persist import until_written
from supervisor.profile import GpuProfile
from supervisor.publisher import Publisher
from supervisor.puller import Puller
from supervisor.upkeep import (
    follow_control,
    reap_forever,
    reaper_owner,
    refresh_capabilities_forever,
    sweep_outputs_forever,
    watch_classes,
)

log = logging.getLogger(__name__)

BackendFactory = Callable[[str, str], Backend]


async def serve_metrics(port: int, publisher: Publisher) -> web.AppRunner:
    """Prometheus metrics of this machine's GPUs and pullers on ``0.0.0.0:port``."""
    registry = CollectorRegistry()
    collector = SnapshotCollector()
    registry.register(collector)

    async def refresh() -> None:
        collector.set(gpu_families(publisher.view()))

    runner = await start_metrics_server(port, registry, refresh=refresh, host="0.0.0.0")
    log.info("metrics on http://0.0.0.0:%d/metrics", port)
    return runner


class Supervisor:
    """Owns the GPU monitor, the backends, the pullers and the upkeep tasks of one machine."""

    def __init__(
        self,
        config: SupervisorConfig,
        monitor: GpuMonitor | None = None,
        backend_factory: BackendFactory | None = None,
    ) -> None:
        self.config = config
        self.monitor = monitor
        # Default: each service's configured adapter, with its options.
        self.backend_factory = backend_factory or config.make_backend
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.pullers: dict[int, Puller] = {}
        self._signals = 0

    def request_stop(self) -> None:
        """Drain: the first call stops claims; a second one interrupts running jobs at once."""
        self._signals += 1
        if self._signals == 1:
            log.warning("supervisor %s: draining (grace %.0f s)", self.config.host_id,
                        self.config.grace_s)  # fmt: skip
            self.stopping.set()
        else:
            log.warning("supervisor %s: stopping now; requeueing running jobs", self.config.host_id)
            self._interrupt_all()

    def _interrupt_all(self) -> None:
        for puller in self.pullers.values():
            if puller.current is not None:
                puller.current.request_stop(StopReason.SHUTDOWN)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    async def run(self) -> int:
        config = self.config
        monitor = self.monitor or GpuMonitor(open_gpu_backend(config.simulate_gpus))
        self.monitor = monitor
        queue = WorkerQueue(config.settings)
        # Cancels, operator commands and drains for this host signal it; block on that from
        # the start, so the first wait for work already covers it.
        queue.listen_for_signals(config.host_id)
        tasks: list[asyncio.Task[None]] = []
        backends: list[Backend] = []
        publisher: Publisher | None = None
        metrics: web.AppRunner | None = None
        try:
            # A store that cannot take writes stops the supervisor here, not mid-job.
            await queue.outputs.check()
            gpus = await monitor.start()
            if config.gpu_indices is not None:
                gpus = [g for g in gpus if g.index in config.gpu_indices]
            for gpu in gpus:
                bound = {b.service: self.backend_factory(b.service, b.url_for(gpu.index))
                         for b in config.backends}  # fmt: skip
                backends.extend(bound.values())
                profile = GpuProfile(f"{config.host_id}:{gpu.index}", bound, config.labels,
                                     vram_gb(gpu.memory_total_mb))  # fmt: skip
                self.pullers[gpu.index] = Puller(gpu.index, bound, queue, monitor, config,
                                                 self.stopping, profile)  # fmt: skip
            control_since = await self._wait_for_redis(queue)
            if control_since is None:
                return 0
            # Work a previous supervisor left on these backends (it died mid-job) would keep
            # them busy; its jobs are recovered from their leases, so drop it.
            await asyncio.gather(*(backend.clear() for backend in backends))
            publisher = Publisher(config, queue, monitor, gpus, self.pullers, self.stopping)

            async def refresh(gpu: int | None) -> None:
                await self.refresh_capabilities(queue, gpu)

            upkeep = [
                asyncio.create_task(publisher.run(), name="publisher"),
                asyncio.create_task(
                    reap_forever(queue, reaper_owner(config.host_id), config.reap_interval_s),
                    name="reaper",
                ),
                asyncio.create_task(
                    follow_control(queue, config.host_id, monitor, control_since, refresh),
                    name="control",
                ),
                asyncio.create_task(
                    watch_classes(queue, config.services, config.publish_interval_s),
                    name="classes",
                ),
                asyncio.create_task(
                    refresh_capabilities_forever(refresh, config.capabilities_refresh_s),
                    name="capabilities",
                ),
                asyncio.create_task(sweep_outputs_forever(queue.outputs), name="output-sweeper"),
            ]
            tasks.extend(upkeep)
            if config.metrics_port is not None:
                metrics = await serve_metrics(config.metrics_port, publisher)
            puller_tasks = [
                asyncio.create_task(p.run(), name=f"puller-{p.where}")
                for p in self.pullers.values()
            ]
            tasks.extend(puller_tasks)
            log.info("supervisor %s up: %d GPU(s), services %s", config.host_id, len(gpus),
                     ", ".join(config.services))  # fmt: skip
            self.ready.set()
            await self.stopping.wait()
            await self._drain(puller_tasks)
            return 0
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if metrics is not None:
                await metrics.cleanup()
            if publisher is not None:
                await publisher.withdraw()
            for backend in backends:
                await backend.aclose()
            await queue.aclose()
            await monitor.close()
            log.info("supervisor %s stopped", config.host_id)

    async def refresh_capabilities(self, queue: WorkerQueue, gpu: int | None = None) -> None:
        """Read the backends' capabilities again (of one GPU, or all); idle pullers whose
        classes changed then wait on the markers of the new ones."""
        pullers = [p for i, p in self.pullers.items() if gpu is None or i == gpu]
        changed = await asyncio.gather(*(p.profile.refresh() for p in pullers))
        if any(changed):
            queue.wakeups.rescope()

    async def _wait_for_redis(self, queue: WorkerQueue) -> str | None:
        """Redis may be down at start: wait for it (or a stop) rather than exit."""
        reach = asyncio.ensure_future(until_written(queue.stream_id_now, "supervisor start: Redis"))
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({reach, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not reach.done():
            reach.cancel()
            await asyncio.gather(reach, return_exceptions=True)
            return None
        return reach.result()

    async def _drain(self, puller_tasks: list[asyncio.Task[None]]) -> None:
        if not puller_tasks:
            return
        _, pending = await asyncio.wait(puller_tasks, timeout=self.config.grace_s)
        if pending:
            log.warning("grace period over: requeueing %d running job(s)", len(pending))
            self._interrupt_all()
            _, pending = await asyncio.wait(pending, timeout=self.config.interrupt_grace_s + 5)
        for task in pending:
            task.cancel()
