"""Fixtures for the GPU layer: a settable clock and a stand-in for the NVML driver under pynvml."""

from __future__ import annotations

import ctypes
import queue
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

MIB = 1 << 20


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now_s: float = 1_700_000_000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def no_nvidia_driver() -> None:
    """Skip the test on a machine where the real NVML library can be loaded."""
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return
    pytest.skip("an NVIDIA driver is installed on this machine")


@dataclass
class FakeDevice:
    """What the stand-in driver reports for one GPU (H100-like by default)."""

    index: int
    name: str = "NVIDIA H100 80GB HBM3"
    total_mb: int = 81559
    used_mb: int = 531
    util_gpu: int = 0
    util_memory: int = 0
    temperature_c: int = 33
    slowdown_c: int = 90
    shutdown_c: int = 95
    power_mw: int = 71_000
    power_limit_mw: int = 700_000
    sm_clock_mhz: int = 345
    mem_clock_mhz: int = 2619
    clock_reasons: int = 0x1
    fan_pct: int = 0
    ecc: dict[tuple[int, int], int] = field(default_factory=dict)  # (type, counter) -> count
    remapped: tuple[int, int, int, int] = (0, 0, 0, 0)
    recovery_action: int = 0

    @property
    def uuid(self) -> str:
        return f"GPU-00000000-0000-0000-0000-00000000000{self.index}"


class FakeDriver:
    """Replaces the pynvml functions ``supervisor.gpu.nvml`` calls; the real pynvml exception
    classes and constants stay. ``fail(name, error, index=None)`` makes a function raise."""

    def __init__(self, devices: list[FakeDevice]) -> None:
        self.devices = devices
        self.calls: Counter[str] = Counter()
        self.errors: dict[tuple[str, int | None], BaseException] = {}
        self.events: queue.Queue[Any] = queue.Queue()
        self.registered: list[int] = []
        self.supported_events = pynvml.nvmlEventTypeXidCriticalError
        self.log: list[str] = []

    def fail(self, name: str, error: BaseException, index: int | None = None) -> None:
        self.errors[(name, index)] = error

    def push_xid(self, index: int, xid: int) -> None:
        self.events.put(
            SimpleNamespace(
                eventType=pynvml.nvmlEventTypeXidCriticalError,
                eventData=xid,
                device=SimpleNamespace(index=index),
            )
        )

    # --- implementations, keyed by pynvml function name ---------------------------------------

    def _impls(self) -> dict[str, Callable[..., Any]]:
        def dev(h: Any) -> FakeDevice:
            return self.devices[h.index]

        def memory(h: Any, version: Any = None) -> Any:
            d = dev(h)
            return SimpleNamespace(
                total=d.total_mb * MIB, used=d.used_mb * MIB, free=(d.total_mb - d.used_mb) * MIB
            )

        def threshold(h: Any, which: int) -> int:
            d = dev(h)
            return (
                d.slowdown_c
                if which == pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
                else d.shutdown_c
            )

        def clock(h: Any, kind: int) -> int:
            return dev(h).sm_clock_mhz if kind == pynvml.NVML_CLOCK_SM else dev(h).mem_clock_mhz

        def wait(event_set: Any, timeout_ms: int) -> Any:
            try:
                return self.events.get(timeout=timeout_ms / 1000)
            except queue.Empty:
                raise pynvml.NVMLError_Timeout() from None

        def field_values(h: Any, ids: list[int]) -> list[Any]:
            return [
                SimpleNamespace(nvmlReturn=0, value=SimpleNamespace(uiVal=dev(h).recovery_action))
            ]

        return {
            "nvmlInit": lambda: self.log.append("init"),
            "nvmlShutdown": lambda: self.log.append("shutdown"),
            "nvmlSystemGetDriverVersion": lambda: "550.54.15",
            "nvmlDeviceGetCount": lambda: len(self.devices),
            "nvmlDeviceGetHandleByIndex": lambda i: SimpleNamespace(index=i),
            "nvmlDeviceGetIndex": lambda h: h.index,
            "nvmlDeviceGetUUID": lambda h: dev(h).uuid,
            "nvmlDeviceGetName": lambda h: dev(h).name,
            "nvmlDeviceGetPciInfo": lambda h: SimpleNamespace(
                busId=f"00000000:{0x18 + 0x10 * h.index:02X}:00.0".encode()
            ),
            "nvmlDeviceGetMemoryInfo": memory,
            "nvmlDeviceGetUtilizationRates": lambda h: SimpleNamespace(
                gpu=dev(h).util_gpu, memory=dev(h).util_memory
            ),
            "nvmlDeviceGetTemperatureV": lambda h, sensor: dev(h).temperature_c,
            "nvmlDeviceGetTemperature": lambda h, sensor: dev(h).temperature_c,
            "nvmlDeviceGetTemperatureThreshold": threshold,
            "nvmlDeviceGetPowerUsage": lambda h: dev(h).power_mw,
            "nvmlDeviceGetEnforcedPowerLimit": lambda h: dev(h).power_limit_mw,
            "nvmlDeviceGetClockInfo": clock,
            "nvmlDeviceGetCurrentClocksEventReasons": lambda h: dev(h).clock_reasons,
            "nvmlDeviceGetCurrentClocksThrottleReasons": lambda h: dev(h).clock_reasons,
            "nvmlDeviceGetFanSpeed": lambda h: dev(h).fan_pct,
            "nvmlDeviceGetTotalEccErrors": lambda h, t, c: dev(h).ecc.get((t, c), 0),
            "nvmlDeviceGetRemappedRows": lambda h: dev(h).remapped,
            "nvmlDeviceGetRetiredPages": lambda h, cause: [],
            "nvmlDeviceGetRetiredPagesPendingStatus": lambda h: 0,
            "nvmlDeviceGetFieldValues": field_values,
            "nvmlEventSetCreate": lambda: SimpleNamespace(name="event-set"),
            "nvmlDeviceGetSupportedEventTypes": lambda h: self.supported_events,
            "nvmlDeviceRegisterEvents": lambda h, mask, es: self.registered.append(h.index),
            "nvmlEventSetWait": wait,
            "nvmlEventSetFree": lambda es: self.log.append("free"),
        }

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name, impl in self._impls().items():
            monkeypatch.setattr(pynvml, name, self._wrap(name, impl))

    def _wrap(self, name: str, impl: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            first = args[0] if args else None
            index = first if isinstance(first, int) else getattr(first, "index", None)
            error = self.errors.get((name, index)) or self.errors.get((name, None))
            if error is not None:
                raise error
            return impl(*args, **kwargs)

        return call


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDriver]:
    """Two H100-like GPUs behind a patched pynvml."""
    fake = FakeDriver([FakeDevice(0), FakeDevice(1)])
    fake.install(monkeypatch)
    yield fake
