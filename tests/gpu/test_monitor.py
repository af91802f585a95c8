"""GpuMonitor: async sampling off the loop, XID delivery from the event thread, clean close."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from supervisor.gpu import monitor as monitor_module
from supervisor.gpu.errors import FaultNotApplicableError, GpuError, UnknownGpuError
from supervisor.gpu.faults import ClearFaults, EccFault, LowMemoryFault, XidFault
from supervisor.gpu.health import HealthVerdict
from supervisor.gpu.monitor import GpuMonitor, GpuStatus
from supervisor.gpu.nvml import NvmlBackend
from supervisor.gpu.readings import GpuReading, XidEvent
from supervisor.sim.gpu import FakeNvml

if TYPE_CHECKING:
    from conftest import FakeDriver

WAIT_S = 5.0  # upper bound for an event to cross threads; normally milliseconds


def nvml_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("nvml")]


class ScriptedFake(FakeNvml):
    """A fake whose event thread replays whatever the test queues: events or errors."""

    def __init__(self, count: int) -> None:
        super().__init__(count, seed="monitor")
        self.script: queue.Queue[XidEvent | Exception | None] = queue.Queue()
        self._taken = 0
        self._changed = threading.Condition()

    def wait_event(self, timeout_ms: int) -> XidEvent | None:
        try:
            item = self.script.get(timeout=timeout_ms / 1000)
        except queue.Empty:
            return None
        with self._changed:
            self._taken += 1
            self._changed.notify_all()
        if isinstance(item, Exception):
            raise item
        return item

    async def consumed(self, count: int) -> None:
        """Wait until the monitor has seen the first ``count`` scripted items.

        The event thread posts an item to the loop before it takes the next one, so a ``None``
        marker taken after them proves the posts happened; the wait returns through the loop,
        after those posts.
        """
        self.script.put(None)

        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(lambda: self._taken > count, WAIT_S)

        assert await asyncio.to_thread(wait)


@pytest.fixture
async def monitor() -> AsyncIterator[GpuMonitor]:
    m = GpuMonitor(FakeNvml(2, seed="monitor"), event_poll_ms=20)
    await m.start()
    yield m
    await m.close()


async def test_discover_and_sample(monitor: GpuMonitor) -> None:
    gpus = await monitor.discover()
    assert [g.index for g in gpus] == [0, 1] and monitor.simulated
    readings = await monitor.sample()
    assert [r.index for r in readings] == [0, 1]
    assert readings[1].fan_pct is not None and readings[0].fan_pct is None
    assert monitor.xid_event_support() == {0: True, 1: True}
    assert "nvml-events" in nvml_threads()


async def test_nvml_calls_run_off_the_event_loop() -> None:
    seen: list[str] = []

    class Spy(FakeNvml):
        def read(self, index: int) -> GpuReading:
            seen.append(threading.current_thread().name)
            return super().read(index)

    async with GpuMonitor(Spy(2), event_poll_ms=20) as m:
        await m.sample()
        await m.check(1)
    assert seen and all(name.startswith("nvml-poll") for name in seen)


async def test_check_follows_readings_and_the_job_memory_need(monitor: GpuMonitor) -> None:
    assert (await monitor.check(0)).status == "healthy"
    await monitor.inject(0, LowMemoryFault(1024))
    verdict = await monitor.check(0, min_free_mb=4096)
    assert verdict.status == "unhealthy" and not verdict.can_claim
    assert verdict.reasons == ("free memory 1024 MiB < required 4096 MiB",)
    assert (await monitor.check(0, min_free_mb=512)).can_claim
    assert monitor.last_verdict(0) == await monitor.check(0, min_free_mb=512)


async def test_xid_from_the_event_thread_reaches_the_check(monitor: GpuMonitor) -> None:
    backend = monitor.backend
    assert isinstance(backend, FakeNvml)
    backend.inject(1, XidFault(79))  # straight into the backend, as the driver would
    event = await asyncio.wait_for(monitor.xid_queue(1).get(), WAIT_S)
    assert (event.gpu_index, event.xid) == (1, 79)
    verdict = await monitor.check(1)
    assert verdict.status == "unhealthy"
    assert verdict.reasons == ("XID 79: GPU has fallen off the bus",)
    assert (await monitor.check(0)).status == "healthy"
    assert (await monitor.check(1)).status == "unhealthy"  # sticky
    assert monitor.recent_xids(1) == (event,)
    monitor.clear_faults(1)
    assert (await monitor.check(1)).status == "healthy"


async def test_sample_and_judge(monitor: GpuMonitor) -> None:
    await monitor.sample_and_judge()  # baseline
    await monitor.inject(0, EccFault(2))
    statuses = await monitor.sample_and_judge()
    assert [s.verdict.status for s in statuses] == ["unhealthy", "healthy"]
    data = statuses[0].to_json_dict()
    assert data["health"] == {"status": "unhealthy", "reasons": ["2 new uncorrectable ECC errors"]}
    assert data["reading"]["ecc_volatile_uncorrected"] == 2
    assert isinstance(statuses[1], GpuStatus)


async def test_inject_clear_also_clears_sticky_health(monitor: GpuMonitor) -> None:
    await monitor.check(0)
    await monitor.inject(0, XidFault(48))
    await asyncio.wait_for(monitor.xid_queue(0).get(), WAIT_S)
    await monitor.inject(0, EccFault(1))
    verdict = await monitor.check(0)
    assert verdict.status == "unhealthy" and len(verdict.reasons) == 2
    await monitor.inject(0, ClearFaults())
    assert (await monitor.check(0)).status == "healthy"


async def test_inject_reports_faults_the_card_cannot_have(monitor: GpuMonitor) -> None:
    with pytest.raises(FaultNotApplicableError):
        await monitor.inject(1, EccFault(1))


async def test_set_busy_drives_the_simulation(monitor: GpuMonitor) -> None:
    monitor.set_busy(1, True)
    busy, idle = (await monitor.read(1)), (await monitor.read(0))
    assert busy.utilization_gpu_pct and busy.utilization_gpu_pct >= 90
    assert idle.utilization_gpu_pct == 0


async def test_unknown_gpu_index(monitor: GpuMonitor) -> None:
    with pytest.raises(UnknownGpuError):
        await monitor.check(2)
    with pytest.raises(UnknownGpuError):
        monitor.xid_queue(-1)


async def test_event_without_gpu_goes_to_every_gpu() -> None:
    backend = ScriptedFake(2)
    async with GpuMonitor(backend, event_poll_ms=20) as m:
        backend.script.put(XidEvent(-1, 79, 0.0))
        await backend.consumed(1)
        for index in (0, 1):
            assert m.xid_queue(index).get_nowait().xid == 79
            assert (await m.check(index)).status == "unhealthy"


async def test_failed_event_wait_degrades_and_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor_module, "EVENT_RETRY_S", 0.01)
    backend = ScriptedFake(1)
    async with GpuMonitor(backend, event_poll_ms=20) as m:
        backend.script.put(GpuError("XID event wait failed: GPU is lost"))
        await backend.consumed(1)
        assert (await m.check(0)) == HealthVerdict(
            "degraded", ("XID events not watched: XID event wait failed: GPU is lost",)
        )
        backend.script.put(XidEvent(0, 13, time.time()))
        await backend.consumed(3)  # the error, the first marker, the XID
        # A delivered event proves the watch works again, so only the XID remains.
        assert (await m.check(0)).reasons == ("XID 13: graphics engine exception",)


async def test_xid_queue_drops_the_oldest_when_nobody_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(monitor_module, "XID_QUEUE_SIZE", 2)
    backend = ScriptedFake(1)
    async with GpuMonitor(backend, event_poll_ms=20) as m:
        for n in (13, 31, 43):
            backend.script.put(XidEvent(0, n, 0.0))
        await backend.consumed(3)
        assert [e.xid for e in m.recent_xids(0)] == [13, 31, 43]
        q = m.xid_queue(0)
        assert [q.get_nowait().xid, q.get_nowait().xid] == [31, 43]


async def test_close_stops_the_threads_and_is_idempotent() -> None:
    before = nvml_threads()
    m = GpuMonitor(FakeNvml(2), event_poll_ms=20)
    await m.start()
    assert "nvml-events" in nvml_threads()
    await m.close()
    await m.close()
    assert nvml_threads() == before == []
    with pytest.raises(GpuError):
        await m.sample()
    with pytest.raises(GpuError):
        await m.start()


async def test_close_before_start_is_fine() -> None:
    m = GpuMonitor(FakeNvml(1))
    await m.close()
    assert nvml_threads() == []


async def test_monitor_over_the_real_backend_with_a_patched_driver(driver: FakeDriver) -> None:
    async with GpuMonitor(NvmlBackend.open(), event_poll_ms=20) as m:
        assert not m.simulated
        assert [g.uuid for g in await m.discover()] == [d.uuid for d in driver.devices]
        driver.push_xid(0, 95)
        await asyncio.wait_for(m.xid_queue(0).get(), WAIT_S)
        assert (await m.check(0)).reasons == ("XID 95: uncontained ECC error",)
        m.set_busy(0, True)  # a no-op on real GPUs
        with pytest.raises(GpuError, match="simulated"):
            await m.inject(0, XidFault(79))
    assert driver.log == ["init", "free", "shutdown"]
    assert nvml_threads() == []


async def test_no_event_thread_when_no_gpu_supports_xid_events(driver: FakeDriver) -> None:
    import pynvml

    driver.supported_events = pynvml.nvmlEventTypePState
    async with GpuMonitor(NvmlBackend.open(), event_poll_ms=20) as m:
        assert m.xid_event_support() == {0: False, 1: False}
        assert "nvml-events" not in nvml_threads()
        assert (await m.check(1)).status == "healthy"
