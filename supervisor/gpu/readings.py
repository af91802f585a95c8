"""Frozen snapshots of what NVML (or the fake) reports about a GPU.

Every metric a GPU may not support is ``X | None``: ``None`` means "not available" (NVML said
NotSupported, or the GPU is lost), never zero. ``to_json_dict()`` keeps those as ``None`` so the
dashboard can show "N/A"; ``from_json_dict()`` validates types and rebuilds the snapshot.
Memory sizes are MiB (2**20 bytes, what nvidia-smi prints as "MiB"), under the suffix ``_mb``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from supervisor.gpu.codes import describe_xid

JsonDict = dict[str, Any]
_T = TypeVar("_T")


@dataclass(frozen=True)
class GpuIdentity:
    """What discovery learns about a GPU once.

    ``index`` is NVML's index (PCI order); ``uuid`` is the stable key across reboots.
    """

    index: int
    uuid: str | None
    name: str | None
    pci_bus_id: str | None
    memory_total_mb: int | None

    def to_json_dict(self) -> JsonDict:
        """Plain JSON-able dict; unavailable values are ``None``."""
        return _encode(self)

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> GpuIdentity:
        """Rebuild from ``to_json_dict()`` output; raises ``ValueError`` on bad input."""
        return _decode(cls, data)


@dataclass(frozen=True)
class GpuReading:
    """One sample of one GPU.

    ``error`` is set after a hard NVML failure (GPU lost, reset required, corrupted InfoROM,
    unknown error); ``lost`` is true when the GPU is gone from the bus. In both cases every
    metric is ``None``.
    """

    index: int
    uuid: str | None
    sampled_at_s: float  # wall clock, time.time()
    lost: bool = False
    error: str | None = None
    utilization_gpu_pct: int | None = None
    utilization_memory_pct: int | None = None  # memory-bandwidth busy %, not capacity
    memory_total_mb: int | None = None
    memory_used_mb: int | None = None
    memory_free_mb: int | None = None
    temperature_c: int | None = None
    temperature_slowdown_c: int | None = None
    temperature_shutdown_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    sm_clock_mhz: int | None = None
    memory_clock_mhz: int | None = None
    # Clock event ("throttle") reasons, names from codes.CLOCK_EVENT_REASONS.
    throttle_reasons: tuple[str, ...] | None = None
    fan_pct: int | None = None
    ecc_volatile_corrected: int | None = None  # since driver load
    ecc_volatile_uncorrected: int | None = None
    ecc_aggregate_corrected: int | None = None  # lifetime
    ecc_aggregate_uncorrected: int | None = None
    remapped_rows_correctable: int | None = None  # Ampere+ datacenter
    remapped_rows_uncorrectable: int | None = None
    remap_pending: bool | None = None
    remap_failure: bool | None = None
    retired_pages_sbe: int | None = None  # pre-Ampere
    retired_pages_dbe: int | None = None
    retired_pages_pending: bool | None = None
    recovery_action: str | None = None  # codes.RECOVERY_ACTIONS name; "none" when all is well

    @property
    def failed(self) -> bool:
        """True when NVML could not read this GPU at all (lost or hard error)."""
        return self.lost or self.error is not None

    def to_json_dict(self) -> JsonDict:
        """Plain JSON-able dict; unavailable values are ``None``."""
        return _encode(self)

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> GpuReading:
        """Rebuild from ``to_json_dict()`` output; raises ``ValueError`` on bad input."""
        return _decode(cls, data)


@dataclass(frozen=True)
class XidEvent:
    """An XID reported by the driver. ``gpu_index`` is -1 when NVML could not say which GPU."""

    gpu_index: int
    xid: int
    timestamp_s: float  # wall clock when the supervisor received it

    @property
    def description(self) -> str:
        """``"XID 79: GPU has fallen off the bus"``."""
        return describe_xid(self.xid)

    def to_json_dict(self) -> JsonDict:
        """Plain JSON-able dict."""
        return _encode(self)

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> XidEvent:
        """Rebuild from ``to_json_dict()`` output; raises ``ValueError`` on bad input."""
        return _decode(cls, data)


# --- JSON codec shared by the snapshots -----------------------------------------------------


def _encode(obj: Any) -> JsonDict:
    out: JsonDict = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        out[field.name] = list(value) if isinstance(value, tuple) else value
    return out


def _decode(cls: type[_T], data: Mapping[str, Any]) -> _T:
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name not in data:
            has_default = field.default is not dataclasses.MISSING
            if has_default:
                continue
            raise ValueError(f"{cls.__name__}: missing field {field.name!r}")
        kwargs[field.name] = _check(cls.__name__, field.name, hints[field.name], data[field.name])
    return cls(**kwargs)


def _check(owner: str, name: str, hint: Any, value: Any) -> Any:
    """Validate ``value`` against the small set of annotations the snapshots use."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check(owner, name, inner, value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{owner}.{name}: expected a list of strings, got {value!r}")
        return tuple(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(hint)
    if not ok:
        raise ValueError(
            f"{owner}.{name}: expected {getattr(hint, '__name__', hint)}, got {value!r}"
        )
    return float(value) if hint is float else value
