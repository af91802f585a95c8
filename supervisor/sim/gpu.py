"""A simulated NVML backend for the demo and the tests: N plausible GPUs that follow job activity.

``FakeNvml`` implements the same ``GpuBackend`` protocol as ``NvmlBackend``, so the monitor,
the health policy and the publisher run unchanged on top of it. Readings a real card would not
support stay ``None`` (no fan on the H100, no ECC or row remapping on the RTX 4090, no retired
pages on either), so the "N/A" paths are exercised. Temperature relaxes towards an idle or busy
target with a time constant; everything else follows ``set_busy`` at once. Pass ``clock`` to make
readings fully deterministic in tests. Faults come from ``supervisor.gpu.faults``.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import uuid as uuid_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from supervisor.gpu.errors import (
    FaultNotApplicableError,
    GpuBackendClosedError,
    GpuError,
    UnknownGpuError,
)
from supervisor.gpu.faults import (
    ClearFaults,
    EccFault,
    Fault,
    GpuLostFault,
    LowMemoryFault,
    RemapFailureFault,
    RemapPendingFault,
    TemperatureFault,
    ThrottleFault,
    XidFault,
)
from supervisor.gpu.readings import GpuIdentity, GpuReading, XidEvent

TEMPERATURE_TAU_S = 20.0  # how fast the simulated temperature follows load (time constant)
IDLE_SM_CLOCK_MHZ = 345
FAKE_DRIVER_VERSION = "550.54.15"


@dataclass(frozen=True)
class FakeGpuProfile:
    """The static character of a simulated card. ``None`` for a feature means NotSupported."""

    name: str
    memory_total_mb: int
    idle_memory_mb: int  # driver-reserved memory an idle card reports as used
    busy_memory_mb: int  # a loaded checkpoint plus activations
    idle_power_w: float
    busy_power_w: float
    power_limit_w: float
    idle_temperature_c: int
    busy_temperature_c: int
    slowdown_c: int
    shutdown_c: int
    max_sm_clock_mhz: int
    memory_clock_mhz: int
    has_fan: bool
    has_ecc: bool
    has_row_remap: bool
    has_page_retirement: bool
    has_recovery_action: bool


H100 = FakeGpuProfile(
    name="NVIDIA H100 80GB HBM3",
    memory_total_mb=81559,
    idle_memory_mb=531,
    busy_memory_mb=23841,
    idle_power_w=71.0,
    busy_power_w=455.0,
    power_limit_w=700.0,
    idle_temperature_c=33,
    busy_temperature_c=64,
    slowdown_c=90,
    shutdown_c=95,
    max_sm_clock_mhz=1980,
    memory_clock_mhz=2619,
    has_fan=False,
    has_ecc=True,
    has_row_remap=True,
    has_page_retirement=False,
    has_recovery_action=True,
)

RTX_4090 = FakeGpuProfile(
    name="NVIDIA GeForce RTX 4090",
    memory_total_mb=24564,
    idle_memory_mb=412,
    busy_memory_mb=14720,
    idle_power_w=22.0,
    busy_power_w=380.0,
    power_limit_w=450.0,
    idle_temperature_c=38,
    busy_temperature_c=71,
    slowdown_c=93,
    shutdown_c=98,
    max_sm_clock_mhz=2790,
    memory_clock_mhz=10501,
    has_fan=True,
    has_ecc=False,
    has_row_remap=False,
    has_page_retirement=False,
    has_recovery_action=False,
)

V100 = FakeGpuProfile(
    name="Tesla V100-SXM2-32GB",
    memory_total_mb=32768,
    idle_memory_mb=310,
    busy_memory_mb=15112,
    idle_power_w=42.0,
    busy_power_w=260.0,
    power_limit_w=300.0,
    idle_temperature_c=35,
    busy_temperature_c=66,
    slowdown_c=87,
    shutdown_c=90,
    max_sm_clock_mhz=1530,
    memory_clock_mhz=877,
    has_fan=False,
    has_ecc=True,
    has_row_remap=False,
    has_page_retirement=True,
    has_recovery_action=False,
)

# Default mix: even indices are H100s, odd ones RTX 4090s, so both N/A shapes show up.
DEFAULT_PROFILES: tuple[FakeGpuProfile, ...] = (H100, RTX_4090)


@dataclass
class _GpuState:
    """Mutable per-GPU simulation state; only touched under ``FakeNvml._lock``."""

    profile: FakeGpuProfile
    uuid: str
    busy: bool = False
    changed_at_s: float = 0.0
    temperature_at_change_c: float = 0.0
    temperature_pin_c: int | None = None
    free_pin_mb: int | None = None
    lost: bool = False
    remap_failure: bool = False
    remap_pending: bool = False
    throttle: tuple[str, ...] = ()
    ecc_volatile_uncorrected: int = 0
    ecc_aggregate_uncorrected: int = 0
    ecc_aggregate_corrected: int = 3  # a few historic corrected errors, as on real cards
    remapped_rows_uncorrectable: int = 0
    faults: list[Fault] = field(default_factory=list)


class FakeNvml:
    """``count`` simulated GPUs behind the ``GpuBackend`` protocol, plus job activity and faults.

    ``profiles`` cycle over the GPUs (default ``DEFAULT_PROFILES``). ``seed`` makes UUIDs
    repeatable (default: unique per instance, so two simulated machines never share a UUID).
    ``clock`` returns wall-clock seconds (default ``time.time``).
    """

    def __init__(
        self,
        count: int,
        *,
        profiles: Sequence[FakeGpuProfile] = DEFAULT_PROFILES,
        seed: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if not profiles:
            raise ValueError("profiles must not be empty")
        self._clock = clock
        self._lock = threading.Lock()
        self._events: queue.Queue[XidEvent] = queue.Queue()
        self._closed = False
        seed = seed if seed is not None else uuid_module.uuid4().hex
        now_s = clock()
        self._gpus = [
            _GpuState(
                profile=profiles[i % len(profiles)],
                uuid="GPU-" + str(uuid_module.uuid5(uuid_module.NAMESPACE_OID, f"{seed}/{i}")),
                changed_at_s=now_s,
                temperature_at_change_c=float(profiles[i % len(profiles)].idle_temperature_c),
            )
            for i in range(count)
        ]

    @property
    def simulated(self) -> bool:
        """Always true."""
        return True

    def driver_version(self) -> str | None:
        """A plausible driver version (``simulated`` says it is not real)."""
        return FAKE_DRIVER_VERSION

    def discover(self) -> list[GpuIdentity]:
        """The simulated GPUs, with PCI bus ids spaced like a real 8-GPU board."""
        self._check_open()
        return [
            GpuIdentity(
                index=i,
                uuid=gpu.uuid,
                name=gpu.profile.name,
                pci_bus_id=f"00000000:{0x18 + 0x10 * i:02X}:00.0",
                memory_total_mb=gpu.profile.memory_total_mb,
            )
            for i, gpu in enumerate(self._gpus)
        ]

    # --- job activity and faults --------------------------------------------------------------

    def set_busy(self, index: int, busy: bool) -> None:
        """Mark a job as running (or not) on GPU ``index``; readings follow from now on."""
        with self._lock:
            gpu = self._gpu(index)
            if gpu.busy == busy:
                return
            now_s = self._clock()
            gpu.temperature_at_change_c = self._temperature(gpu, now_s)
            gpu.changed_at_s = now_s
            gpu.busy = busy

    def inject(self, index: int, fault: Fault) -> None:
        """Apply a fault to GPU ``index``; ``ClearFaults`` undoes all of them (a GPU reset).

        Raises ``FaultNotApplicableError`` for a fault the card cannot have (ECC on a card without
        ECC, a row-remap fault on a card without row remapping).
        """
        with self._lock:
            gpu = self._gpu(index)
            profile = gpu.profile
            if isinstance(fault, ClearFaults):
                self._clear(gpu)
                return
            if isinstance(fault, XidFault):
                self._events.put(XidEvent(index, fault.xid, self._clock()))
            elif isinstance(fault, GpuLostFault):
                gpu.lost = True
            elif isinstance(fault, TemperatureFault):
                gpu.temperature_pin_c = (
                    fault.temperature_c
                    if fault.temperature_c is not None
                    else profile.slowdown_c + 2
                )
            elif isinstance(fault, EccFault):
                self._require(profile.has_ecc, index, "ECC")
                gpu.ecc_volatile_uncorrected += fault.count
                gpu.ecc_aggregate_uncorrected += fault.count
            elif isinstance(fault, RemapFailureFault):
                self._require(profile.has_row_remap, index, "row remapping")
                gpu.remap_failure = True
                gpu.remapped_rows_uncorrectable += 1
            elif isinstance(fault, RemapPendingFault):
                self._require(profile.has_row_remap, index, "row remapping")
                gpu.remap_pending = True
                gpu.remapped_rows_uncorrectable += 1
            elif isinstance(fault, LowMemoryFault):
                gpu.free_pin_mb = min(fault.free_mb, profile.memory_total_mb)
            elif isinstance(fault, ThrottleFault):
                gpu.throttle = fault.reasons
            gpu.faults.append(fault)

    def active_faults(self, index: int) -> tuple[Fault, ...]:
        """The faults injected into GPU ``index`` since the last ``ClearFaults``."""
        with self._lock:
            return tuple(self._gpu(index).faults)

    def _clear(self, gpu: _GpuState) -> None:
        # A reset clears the volatile ECC counters and applies pending remaps; lifetime
        # (aggregate) counters and the remapped-row count survive it.
        gpu.lost = False
        gpu.temperature_pin_c = None
        gpu.free_pin_mb = None
        gpu.remap_failure = False
        gpu.remap_pending = False
        gpu.throttle = ()
        gpu.ecc_volatile_uncorrected = 0
        gpu.faults.clear()

    @staticmethod
    def _require(supported: bool, index: int, feature: str) -> None:
        if not supported:
            raise FaultNotApplicableError(f"simulated GPU {index} has no {feature}")

    # --- readings -----------------------------------------------------------------------------

    def read(self, index: int) -> GpuReading:
        """One deterministic sample of GPU ``index`` (given the clock)."""
        self._check_open()
        with self._lock:
            gpu = self._gpu(index)
            now_s = self._clock()
            if gpu.lost:
                return GpuReading(index, gpu.uuid, now_s, lost=True, error="GPU is lost")
            return self._reading(index, gpu, now_s)

    def _reading(self, index: int, gpu: _GpuState, now_s: float) -> GpuReading:
        p = gpu.profile
        # A slow, bounded wobble so the demo's sparklines move while a job runs.
        wobble = math.sin(now_s / 3.0)
        util = min(100, 96 + round(3 * wobble)) if gpu.busy else 0
        memory_util = 38 + round(6 * wobble) if gpu.busy else 0
        used_mb = p.busy_memory_mb if gpu.busy else p.idle_memory_mb
        if gpu.free_pin_mb is not None:
            used_mb = p.memory_total_mb - gpu.free_pin_mb
        temperature_c = round(self._temperature(gpu, now_s))
        reasons: list[str] = [] if gpu.busy else ["gpu_idle"]
        if temperature_c >= p.slowdown_c:
            reasons += ["sw_thermal_slowdown", "hw_thermal_slowdown"]
        reasons += [r for r in gpu.throttle if r not in reasons]
        fan_pct = max(30, min(100, 30 + 2 * (temperature_c - p.idle_temperature_c)))
        return GpuReading(
            index=index,
            uuid=gpu.uuid,
            sampled_at_s=now_s,
            utilization_gpu_pct=util,
            utilization_memory_pct=memory_util,
            memory_total_mb=p.memory_total_mb,
            memory_used_mb=used_mb,
            memory_free_mb=p.memory_total_mb - used_mb,
            temperature_c=temperature_c,
            temperature_slowdown_c=p.slowdown_c,
            temperature_shutdown_c=p.shutdown_c,
            power_w=round(p.idle_power_w + (p.busy_power_w - p.idle_power_w) * util / 100, 1),
            power_limit_w=p.power_limit_w,
            sm_clock_mhz=p.max_sm_clock_mhz if gpu.busy else IDLE_SM_CLOCK_MHZ,
            memory_clock_mhz=p.memory_clock_mhz,
            throttle_reasons=tuple(reasons),
            fan_pct=fan_pct if p.has_fan else None,
            ecc_volatile_corrected=0 if p.has_ecc else None,
            ecc_volatile_uncorrected=gpu.ecc_volatile_uncorrected if p.has_ecc else None,
            ecc_aggregate_corrected=gpu.ecc_aggregate_corrected if p.has_ecc else None,
            ecc_aggregate_uncorrected=gpu.ecc_aggregate_uncorrected if p.has_ecc else None,
            remapped_rows_correctable=0 if p.has_row_remap else None,
            remapped_rows_uncorrectable=(
                gpu.remapped_rows_uncorrectable if p.has_row_remap else None
            ),
            remap_pending=gpu.remap_pending if p.has_row_remap else None,
            remap_failure=gpu.remap_failure if p.has_row_remap else None,
            retired_pages_sbe=0 if p.has_page_retirement else None,
            retired_pages_dbe=0 if p.has_page_retirement else None,
            retired_pages_pending=False if p.has_page_retirement else None,
            recovery_action="none" if p.has_recovery_action else None,
        )

    @staticmethod
    def _temperature(gpu: _GpuState, now_s: float) -> float:
        if gpu.temperature_pin_c is not None:
            return float(gpu.temperature_pin_c)
        p = gpu.profile
        target = p.busy_temperature_c if gpu.busy else p.idle_temperature_c
        elapsed_s = max(0.0, now_s - gpu.changed_at_s)
        decay = math.exp(-elapsed_s / TEMPERATURE_TAU_S)
        return target + (gpu.temperature_at_change_c - target) * decay

    # --- XID events ---------------------------------------------------------------------------

    def open_events(self) -> dict[int, bool]:
        """Every simulated GPU delivers XID events."""
        self._check_open()
        return dict.fromkeys(range(len(self._gpus)), True)

    def wait_event(self, timeout_ms: int) -> XidEvent | None:
        """The next injected XID, or ``None`` after ``timeout_ms``."""
        if self._closed:
            raise GpuError("XID events are not registered on this backend")
        try:
            return self._events.get(timeout=timeout_ms / 1000.0)
        except queue.Empty:
            return None

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Mark the backend closed; later reads raise ``GpuBackendClosedError``."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise GpuBackendClosedError("the simulated GPU backend is closed")

    def _gpu(self, index: int) -> _GpuState:
        if not 0 <= index < len(self._gpus):
            raise UnknownGpuError(f"no simulated GPU with index {index}")
        return self._gpus[index]
