"""The fleet records a supervisor publishes and every dashboard, metrics endpoint, gateway and
CLI reads back: one :class:`HostRecord` per machine and one :class:`GpuRecord` per GPU.

Defined once here so writer and readers cannot drift apart. The wire format is a flat JSON
object per record (see :mod:`fleetq.fleet` for where they live in Redis); ``schema`` counts
incompatible changes of that format.

Reading is tolerant in both directions, because a fleet is upgraded one machine at a time:

* a field an older supervisor did not publish, or published with the wrong type, takes its
  default (``None`` for "not available", shown as N/A), never an exception;
* a field a newer supervisor publishes that this version does not know is kept in ``extra`` and
  written back by :meth:`to_json`, so the gateway relays it unchanged;
* an enum word this version does not know reads as ``None`` (unknown), not as an error.

To publish a new field: add it to the record with a default (so older records still read),
read it in ``from_json`` with a type check, write it in ``to_json``, and set it in
``supervisor/publisher.py``. Only bump ``RECORD_SCHEMA`` when a field changes meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

#: Version of the record wire format, published in each record as ``schema``. A reader accepts
#: records of any schema and reads the fields it knows.
RECORD_SCHEMA = 1

E = TypeVar("E", bound=Enum)


class GpuHealth(str, Enum):
    """The supervisor's health verdict on a GPU (``lost``: gone from the bus)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    LOST = "lost"

    def __str__(self) -> str:
        return self.value


class PullerStatus(str, Enum):
    """What the puller of a GPU is doing (``unmanaged``: no puller serves this GPU)."""

    IDLE = "idle"
    RUNNING = "running"
    BLOCKED = "blocked"
    STOPPED = "stopped"
    UNMANAGED = "unmanaged"

    def __str__(self) -> str:
        return self.value


class BlockedBy(str, Enum):
    """Why a puller does not claim jobs: the machine-readable side of the ``blocked`` text."""

    DRAINED = "drained"
    REDIS_UNAVAILABLE = "redis_unavailable"
    SERVICE_PAUSED = "service_paused"
    GPU_UNHEALTHY = "gpu_unhealthy"
    BACKEND_FAILING = "backend_failing"
    BACKEND_DOWN = "backend_down"
    BACKEND_BUSY = "backend_busy"
    NO_PULLER = "no_puller"

    def __str__(self) -> str:
        return self.value


class HostState(str, Enum):
    """Whether a supervisor takes new work (``draining``: it finishes its jobs, then exits)."""

    RUNNING = "running"
    DRAINING = "draining"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class GpuJobRecord:
    """The job a GPU runs right now."""

    id: str
    service: str = ""
    #: 0..1, or None when the backend reports none.
    progress: float | None = None
    progress_text: str = ""
    started_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "progress": None if self.progress is None else round(self.progress, 4),
            "progress_text": self.progress_text,
            "started_ms": self.started_ms,
        }

    @classmethod
    def from_json(cls, data: Any) -> GpuJobRecord | None:
        """The job in ``data``; None when there is none (or no usable job id)."""
        if not _is_mapping(data) or not data.get("id"):
            return None
        return cls(
            id=str(data["id"]),
            service=str(data.get("service") or ""),
            progress=number(data.get("progress")),
            progress_text=str(data.get("progress_text") or ""),
            started_ms=_int(data.get("started_ms")),
        )


_GPU_FIELDS = frozenset(
    (
        "schema", "index", "name", "uuid", "health", "reasons", "status", "blocked",
        "blocked_by", "drained", "services", "backends", "job", "jobs_done", "readings",
        "capabilities", "capabilities_unreadable", "labels", "vram_gb", "warm_model",
        "warm_models", "model_loads", "classes_served",
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class GpuRecord:
    """One GPU as its supervisor last published it. ``None`` means "not available"."""

    index: int
    name: str | None = None
    uuid: str | None = None
    health: GpuHealth | None = None
    #: Why the GPU is not healthy, in words.
    reasons: tuple[str, ...] = ()
    status: PullerStatus | None = None
    #: Why the puller is not claiming, in words (None while it may claim).
    blocked: str | None = None
    blocked_by: BlockedBy | None = None
    #: The puller found this GPU or its machine drained at its last claim attempt.
    drained: bool = False
    services: tuple[str, ...] = ()
    #: service -> backend URL (credentials removed).
    backends: Mapping[str, str] = field(default_factory=dict)
    job: GpuJobRecord | None = None
    jobs_done: int = 0
    #: Every reading of the last sample (see ``GpuReading``): utilization_gpu_pct,
    #: memory_used_mb, temperature_c, power_w, ecc_uncorrected, ...; None = not supported.
    readings: Mapping[str, Any] = field(default_factory=dict)
    #: Scheduling (docs/SCHEDULING.md): service -> digest of the capabilities this GPU's
    #: backend offers (the document is ``caps:<digest>``); a service missing here claims every
    #: requirement class.
    capabilities: Mapping[str, str] = field(default_factory=dict)
    #: service -> why its capabilities could not be read the last time.
    capabilities_unreadable: Mapping[str, str] = field(default_factory=dict)
    #: The machine's operator labels (``--label``).
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Total GPU memory in GB (10^9 bytes), as ``min_vram_gb`` compares it.
    vram_gb: float | None = None
    #: The model the backend has loaded (the first of ``warm_models``), or None.
    warm_model: str | None = None
    #: service -> names of the model its backend has loaded (affinity matches on these).
    warm_models: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Jobs that made the backend load another checkpoint, since the supervisor started.
    model_loads: int = 0
    #: service -> how many requirement classes this GPU can run.
    classes_served: Mapping[str, int] = field(default_factory=dict)
    schema: int = RECORD_SCHEMA
    #: Fields of a newer schema this version does not know, kept to be relayed as they came.
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The wire form (a JSON-able dict)."""
        return {
            **self.extra,
            "schema": self.schema,
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "health": _value(self.health),
            "reasons": list(self.reasons),
            "status": _value(self.status),
            "blocked": self.blocked,
            "blocked_by": _value(self.blocked_by),
            "drained": self.drained,
            "services": list(self.services),
            "backends": dict(self.backends),
            "job": None if self.job is None else self.job.to_json(),
            "jobs_done": self.jobs_done,
            "readings": dict(self.readings),
            "capabilities": dict(self.capabilities),
            "capabilities_unreadable": dict(self.capabilities_unreadable),
            "labels": dict(self.labels),
            "vram_gb": self.vram_gb,
            "warm_model": self.warm_model,
            "warm_models": {s: list(names) for s, names in self.warm_models.items()},
            "model_loads": self.model_loads,
            "classes_served": dict(self.classes_served),
        }

    @classmethod
    def from_json(cls, data: Any) -> GpuRecord | None:
        """Read a published GPU record of any schema; None when it is not one (not an object,
        or without an integer ``index``)."""
        if not _is_mapping(data):
            return None
        # A dashboard reads every GPU of the fleet each second: one bound lookup for all.
        get = data.get
        index = _int(get("index"))
        if index is None:
            return None
        readings = get("readings")
        return cls(
            index=index,
            name=_str(get("name")) or None,
            uuid=_str(get("uuid")),
            health=_enum(GpuHealth, get("health")),
            reasons=_strings(get("reasons")),
            status=_enum(PullerStatus, get("status")),
            blocked=_str(get("blocked")) or None,
            blocked_by=_enum(BlockedBy, get("blocked_by")),
            drained=get("drained") is True,
            services=_strings(get("services")),
            backends=_str_map(get("backends")),
            job=GpuJobRecord.from_json(get("job")),
            jobs_done=_int(get("jobs_done")) or 0,
            readings=dict(readings) if _is_mapping(readings) else {},
            capabilities=_str_map(get("capabilities")),
            capabilities_unreadable=_str_map(get("capabilities_unreadable")),
            labels=_str_map(get("labels")),
            vram_gb=number(get("vram_gb")),
            warm_model=_str(get("warm_model")),
            warm_models=_strings_map(get("warm_models")),
            model_loads=_int(get("model_loads")) or 0,
            classes_served=_int_map(get("classes_served")),
            schema=_int(get("schema")) or 0,
            extra=_extra(data, _GPU_FIELDS),
        )

    def reading(self, name: str) -> float | None:
        """A numeric reading, or None when missing, not a number, or not finite."""
        return number(self.readings.get(name))


_HOST_FIELDS = frozenset(
    (
        "schema", "host", "version", "pid", "started_ms", "heartbeat_ms", "gpus", "simulated",
        "state", "backends",
    )
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class HostRecord:
    """One supervisor's machine as it last published it."""

    host: str | None = None
    #: The fleetq version the supervisor runs (the record format's version is ``schema``).
    version: str | None = None
    pid: int | None = None
    started_ms: int | None = None
    heartbeat_ms: int | None = None
    #: How many GPUs the supervisor manages.
    gpus: int | None = None
    simulated: bool = False
    state: HostState | None = None
    #: service -> backend URL template (credentials removed).
    backends: Mapping[str, str] = field(default_factory=dict)
    schema: int = RECORD_SCHEMA
    #: Fields of a newer schema this version does not know, kept to be relayed as they came.
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def draining(self) -> bool:
        return self.state is HostState.DRAINING

    def to_json(self) -> dict[str, Any]:
        """The wire form (a JSON-able dict)."""
        return {
            **self.extra,
            "schema": self.schema,
            "host": self.host,
            "version": self.version,
            "pid": self.pid,
            "started_ms": self.started_ms,
            "heartbeat_ms": self.heartbeat_ms,
            "gpus": self.gpus,
            "simulated": self.simulated,
            "state": _value(self.state),
            "backends": dict(self.backends),
        }

    @classmethod
    def from_json(cls, data: Any) -> HostRecord:
        """Read a published host record of any schema; anything unreadable reads as empty."""
        if not _is_mapping(data):
            return cls(schema=0)
        version = data.get("version")
        return cls(
            host=_str(data.get("host")),
            version=None if version is None else str(version),
            pid=_int(data.get("pid")),
            started_ms=_int(data.get("started_ms")),
            heartbeat_ms=_int(data.get("heartbeat_ms")),
            gpus=_int(data.get("gpus")),
            simulated=data.get("simulated") is True,
            state=_enum(HostState, data.get("state")),
            backends=_str_map(data.get("backends")),
            schema=_int(data.get("schema")) or 0,
            extra=_extra(data, _HOST_FIELDS),
        )


def number(value: Any) -> float | None:
    """A finite number from a published record, or None (N/A, never a fake 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    out = float(value)
    return out if out == out and out not in (float("inf"), float("-inf")) else None


def _extra(data: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The fields of ``data`` this version does not know (usually none: one set difference)."""
    unknown = data.keys() - known
    return {k: v for k, v in data.items() if k in unknown} if unknown else {}


def _is_mapping(value: Any) -> bool:
    # Records come from JSON, whose objects are dicts: the exact type test answers without
    # the abstract-class check (a dashboard reads every field of every GPU each second).
    return value.__class__ is dict or isinstance(value, Mapping)


def _value(member: Enum | None) -> Any:
    return None if member is None else member.value


def _enum(cls: type[E], raw: Any) -> E | None:
    if raw is None:  # most optional fields are absent: no exception raised and caught
        return None
    try:
        # The members by value, as ``cls(raw)`` looks them up first (without its overhead).
        member = cls._value2member_map_.get(raw)
    except TypeError:  # not hashable: not a member's value
        return None
    if member is not None:
        return member  # type: ignore[return-value]
    try:
        return cls(raw)
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _strings(value: Any) -> tuple[str, ...]:
    if not value or not isinstance(value, list):
        return ()
    return tuple([x if x.__class__ is str else str(x) for x in value])


def _strings_map(value: Any) -> dict[str, tuple[str, ...]]:
    if not value or not _is_mapping(value):
        return {}
    return {str(k): _strings(v) for k, v in value.items()}


def _int_map(value: Any) -> dict[str, int]:
    if not value or not _is_mapping(value):
        return {}
    return {str(k): v for k, v in value.items() if _int(v) is not None}


def _str_map(value: Any) -> dict[str, str]:
    if not value or not _is_mapping(value):
        return {}
    return {str(k): str(v) for k, v in value.items()}


__all__ = [
    "RECORD_SCHEMA",
    "BlockedBy",
    "GpuHealth",
    "GpuJobRecord",
    "GpuRecord",
    "HostRecord",
    "HostState",
    "PullerStatus",
    "number",
]
