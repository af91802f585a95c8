"""The simulated NVML backend: plausible GPUs, job activity, fault injection and clearing."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

from supervisor.gpu.backend import GpuBackend, SimulatedBackend, open_gpu_backend
from supervisor.gpu.errors import FaultNotApplicableError, GpuBackendClosedError, UnknownGpuError
from supervisor.gpu.faults import (
    ClearFaults,
    EccFault,
    GpuLostFault,
    LowMemoryFault,
    RemapFailureFault,
    RemapPendingFault,
    TemperatureFault,
    ThrottleFault,
    XidFault,
    parse_fault,
)
from supervisor.sim.gpu import H100, RTX_4090, V100, FakeNvml

if TYPE_CHECKING:
    from conftest import Clock


@pytest.fixture
def fake(clock: Clock) -> FakeNvml:
    return FakeNvml(3, seed="test", clock=clock)


def test_open_gpu_backend_simulates_when_asked() -> None:
    backend = open_gpu_backend(2)
    assert isinstance(backend, FakeNvml) and backend.simulated
    assert isinstance(backend, GpuBackend) and isinstance(backend, SimulatedBackend)
    assert len(backend.discover()) == 2


def test_discovery_is_plausible_and_repeatable(fake: FakeNvml, clock: Clock) -> None:
    gpus = fake.discover()
    assert [g.name for g in gpus] == [H100.name, RTX_4090.name, H100.name]
    assert all(g.uuid and g.uuid.startswith("GPU-") for g in gpus)
    assert len({g.uuid for g in gpus}) == 3
    assert [g.uuid for g in FakeNvml(3, seed="test", clock=clock).discover()] == [
        g.uuid for g in gpus
    ]
    assert FakeNvml(1).discover()[0].uuid != FakeNvml(1).discover()[0].uuid  # unseeded: unique
    assert gpus[1].pci_bus_id == "00000000:28:00.0"
    assert fake.driver_version()


def test_unsupported_readings_stay_none_and_render_as_none(fake: FakeNvml) -> None:
    h100, rtx = fake.read(0), fake.read(1)
    assert h100.fan_pct is None and rtx.fan_pct is not None  # passive datacenter card
    assert rtx.ecc_volatile_uncorrected is None and h100.ecc_volatile_uncorrected == 0
    assert rtx.remap_failure is None and h100.remap_failure is False
    assert h100.retired_pages_sbe is None  # replaced by row remapping on Ampere+
    assert rtx.recovery_action is None
    data = rtx.to_json_dict()
    assert data["ecc_volatile_uncorrected"] is None and data["remap_pending"] is None
    v100 = FakeNvml(1, profiles=[V100]).read(0)
    assert v100.retired_pages_sbe == 0 and v100.remap_failure is None


def test_readings_follow_job_activity(fake: FakeNvml, clock: Clock) -> None:
    idle = fake.read(0)
    assert idle.utilization_gpu_pct == 0 and idle.throttle_reasons == ("gpu_idle",)
    assert idle.temperature_c == H100.idle_temperature_c
    fake.set_busy(0, True)
    clock.advance(5 * 20.0)  # five time constants
    busy = fake.read(0)
    assert busy.utilization_gpu_pct is not None and busy.utilization_gpu_pct >= 90
    assert busy.memory_used_mb == H100.busy_memory_mb
    assert busy.power_w is not None and idle.power_w is not None and busy.power_w > idle.power_w
    assert busy.temperature_c is not None
    assert abs(busy.temperature_c - H100.busy_temperature_c) <= 1
    assert busy.throttle_reasons == ()
    assert fake.read(1).utilization_gpu_pct == 0  # other GPUs are unaffected
    fake.set_busy(0, False)
    clock.advance(20.0)
    cooling = fake.read(0).temperature_c
    expected = H100.idle_temperature_c + (busy.temperature_c - H100.idle_temperature_c) / math.e
    assert cooling is not None and abs(cooling - expected) <= 1


def test_same_clock_gives_same_reading(fake: FakeNvml) -> None:
    fake.set_busy(2, True)
    assert fake.read(2) == fake.read(2)


def test_xid_injection_is_delivered_by_wait_event(fake: FakeNvml, clock: Clock) -> None:
    assert fake.open_events() == {0: True, 1: True, 2: True}
    assert fake.wait_event(1) is None
    fake.inject(2, XidFault(79))
    event = fake.wait_event(1000)
    assert event is not None and (event.gpu_index, event.xid, event.timestamp_s) == (
        2,
        79,
        clock(),
    )


def test_overheat_pins_temperature_and_throttles(fake: FakeNvml) -> None:
    fake.inject(0, TemperatureFault(95))
    r = fake.read(0)
    assert r.temperature_c == 95
    assert r.throttle_reasons is not None and "hw_thermal_slowdown" in r.throttle_reasons
    fake.inject(1, parse_fault("overheat"))
    assert fake.read(1).temperature_c == RTX_4090.slowdown_c + 2


def test_ecc_remap_memory_throttle_and_lost_faults(fake: FakeNvml) -> None:
    fake.inject(0, EccFault(2))
    fake.inject(0, RemapFailureFault())
    fake.inject(0, RemapPendingFault())
    fake.inject(0, ThrottleFault(("hw_slowdown",)))
    fake.inject(0, LowMemoryFault(1024))
    r = fake.read(0)
    assert r.ecc_volatile_uncorrected == 2 and r.ecc_aggregate_uncorrected == 2
    assert r.remap_failure is True and r.remap_pending is True
    assert r.remapped_rows_uncorrectable == 2
    assert r.memory_free_mb == 1024 and r.memory_used_mb == H100.memory_total_mb - 1024
    assert r.throttle_reasons is not None and "hw_slowdown" in r.throttle_reasons
    assert len(fake.active_faults(0)) == 5
    fake.inject(0, GpuLostFault())
    lost = fake.read(0)
    assert lost.lost and lost.failed and lost.temperature_c is None
    assert lost.to_json_dict()["memory_free_mb"] is None


def test_clear_undoes_faults_like_a_gpu_reset(fake: FakeNvml) -> None:
    for fault in (EccFault(3), RemapFailureFault(), TemperatureFault(99), GpuLostFault()):
        fake.inject(0, fault)
    fake.inject(0, ClearFaults())
    r = fake.read(0)
    assert not r.lost and r.temperature_c == H100.idle_temperature_c
    assert r.ecc_volatile_uncorrected == 0  # volatile counters reset...
    assert r.ecc_aggregate_uncorrected == 3  # ...lifetime counters do not
    assert r.remap_failure is False
    assert fake.active_faults(0) == ()


def test_faults_a_card_cannot_have_are_refused(fake: FakeNvml) -> None:
    with pytest.raises(FaultNotApplicableError, match="ECC"):
        fake.inject(1, EccFault())
    with pytest.raises(FaultNotApplicableError, match="row remapping"):
        fake.inject(1, RemapFailureFault())
    assert fake.active_faults(1) == ()


def test_unknown_index_and_closed_backend(fake: FakeNvml) -> None:
    with pytest.raises(UnknownGpuError):
        fake.read(3)
    with pytest.raises(UnknownGpuError):
        fake.inject(-1, GpuLostFault())
    fake.close()
    with pytest.raises(GpuBackendClosedError):
        fake.read(0)


def test_count_must_not_be_negative() -> None:
    with pytest.raises(ValueError):
        FakeNvml(-1)
