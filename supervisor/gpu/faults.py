"""Faults an operator can inject into simulated GPUs, and the parser for their CLI specs.

Grammar (case-insensitive, surrounding blanks ignored, ``_`` accepted for ``-``)::

    clear                      clear every injected fault (simulates a GPU reset)
    lost                       the GPU falls off the bus: every reading fails
    xid=N                      deliver XID N (1..9999) through the event thread
    temp=C | overheat          pin the temperature at C (0..200); overheat = slowdown + 2
    ecc | ecc=N                N (default 1) new uncorrectable ECC errors
    remap-fail                 the row remapper reports a failure
    remap-pending              a row remap is pending (applied at the next reset)
    mem-free=MB                pin free memory at MB MiB (clamped to the card's total)
    throttle | throttle=R[,R]  report clock event reasons (default hw_power_brake_slowdown)

``parse_fault(fault.spec) == fault`` for every fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeAlias

from supervisor.gpu.codes import CLOCK_EVENT_NAMES
from supervisor.gpu.errors import FaultSpecError

MAX_XID = 9999
MAX_TEMPERATURE_C = 200
MAX_ECC_ERRORS = 1_000_000
MAX_FREE_MB = 10_000_000


@dataclass(frozen=True)
class ClearFaults:
    """Clear every injected fault on the GPU (and, through the monitor, its sticky health)."""

    @property
    def spec(self) -> str:
        return "clear"


@dataclass(frozen=True)
class GpuLostFault:
    """The GPU falls off the bus; NVML reads fail as with NVMLError_GpuIsLost."""

    @property
    def spec(self) -> str:
        return "lost"


@dataclass(frozen=True)
class XidFault:
    """Deliver one XID event."""

    xid: int

    @property
    def spec(self) -> str:
        return f"xid={self.xid}"


@dataclass(frozen=True)
class TemperatureFault:
    """Pin the temperature; ``None`` means two degrees above the card's slowdown threshold."""

    temperature_c: int | None = None

    @property
    def spec(self) -> str:
        return "overheat" if self.temperature_c is None else f"temp={self.temperature_c}"


@dataclass(frozen=True)
class EccFault:
    """Add ``count`` uncorrectable ECC errors (volatile and aggregate)."""

    count: int = 1

    @property
    def spec(self) -> str:
        return "ecc" if self.count == 1 else f"ecc={self.count}"


@dataclass(frozen=True)
class RemapFailureFault:
    """The row remapper reports a failure (RMA candidate)."""

    @property
    def spec(self) -> str:
        return "remap-fail"


@dataclass(frozen=True)
class RemapPendingFault:
    """A row remap is pending until the next GPU reset."""

    @property
    def spec(self) -> str:
        return "remap-pending"


@dataclass(frozen=True)
class LowMemoryFault:
    """Pin free memory at ``free_mb`` MiB (something else holds the rest)."""

    free_mb: int

    @property
    def spec(self) -> str:
        return f"mem-free={self.free_mb}"


DEFAULT_THROTTLE: tuple[str, ...] = ("hw_power_brake_slowdown",)


@dataclass(frozen=True)
class ThrottleFault:
    """Report these clock event reasons (names from ``codes.CLOCK_EVENT_REASONS``)."""

    reasons: tuple[str, ...] = DEFAULT_THROTTLE

    @property
    def spec(self) -> str:
        return "throttle=" + ",".join(self.reasons)


Fault: TypeAlias = (
    ClearFaults
    | GpuLostFault
    | XidFault
    | TemperatureFault
    | EccFault
    | RemapFailureFault
    | RemapPendingFault
    | LowMemoryFault
    | ThrottleFault
)

_KEY = re.compile(r"[a-z-]+", re.ASCII)
_NUMBER = re.compile(r"[0-9]{1,9}", re.ASCII)
_BARE: dict[str, Fault] = {
    "clear": ClearFaults(),
    "lost": GpuLostFault(),
    "overheat": TemperatureFault(),
    "ecc": EccFault(),
    "remap-fail": RemapFailureFault(),
    "remap-pending": RemapPendingFault(),
    "throttle": ThrottleFault(),
}


def parse_fault(spec: str) -> Fault:
    """Parse a CLI fault spec such as ``"xid=79"`` (grammar in the module docstring).

    Raises ``FaultSpecError`` with a message naming the valid forms.
    """
    key, sep, value = spec.partition("=")
    key = key.strip().lower().replace("_", "-")
    if _KEY.fullmatch(key) is None:
        raise FaultSpecError(f"bad fault spec {spec!r}; {_USAGE}")
    arg = value.strip().lower() if sep else None
    if arg is None:
        if key in _BARE:
            return _BARE[key]
        raise FaultSpecError(f"bad fault spec {spec!r}; {_USAGE}")
    if key == "xid":
        return XidFault(_number(spec, arg, 1, MAX_XID))
    if key in ("temp", "temperature"):
        return TemperatureFault(_number(spec, arg, 0, MAX_TEMPERATURE_C))
    if key == "ecc":
        return EccFault(_number(spec, arg, 1, MAX_ECC_ERRORS))
    if key == "mem-free":
        return LowMemoryFault(_number(spec, arg, 0, MAX_FREE_MB))
    if key == "throttle":
        return ThrottleFault(_throttle_reasons(spec, arg))
    raise FaultSpecError(f"bad fault spec {spec!r}; {_USAGE}")


_USAGE = (
    "expected one of: clear, lost, xid=N, temp=C, overheat, ecc[=N], remap-fail, "
    "remap-pending, mem-free=MB, throttle[=REASON,...]"
)


def _number(spec: str, arg: str, low: int, high: int) -> int:
    if _NUMBER.fullmatch(arg) is None or not low <= int(arg) <= high:
        raise FaultSpecError(
            f"bad fault spec {spec!r}: {arg!r} is not a whole number {low}..{high}"
        )
    return int(arg)


def _throttle_reasons(spec: str, arg: str) -> tuple[str, ...]:
    # Reason names use underscores; accept hyphens as the keys do.
    names = tuple(part.strip().replace("-", "_") for part in arg.split(","))
    unknown = [name for name in names if name not in CLOCK_EVENT_NAMES]
    if unknown or not names:
        valid = ", ".join(sorted(CLOCK_EVENT_NAMES))
        raise FaultSpecError(f"bad fault spec {spec!r}: unknown reason(s) {unknown}; use {valid}")
    return names
