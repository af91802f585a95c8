"""Fleet records: what each supervisor publishes about its host and GPUs, and how a dashboard
reads them back.

A supervisor writes, every second, one JSON host record and one JSON list of GPU records, each
with a time to live; a machine that stops publishing disappears (shown as offline, never as
zeros). The read is O(hosts): one ZRANGE and two MGETs, whatever the queue size.

The records themselves (fields, wire format, tolerant reading) are defined in
:mod:`fleetq.records`: :class:`~fleetq.records.HostRecord` and
:class:`~fleetq.records.GpuRecord`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetq.protocol import text
from fleetq.records import GpuRecord, HostRecord

try:
    # The dashboard's extra installs orjson: it reads every machine's records each second
    # (60 documents at 30 machines), and orjson parses them in about two thirds of the time.
    # Without it (the bare client), the standard library reads the same documents.
    import orjson
except ImportError:  # pragma: no cover - tests run with every extra
    orjson = None  # type: ignore[assignment]

HOST_TTL_MS = 5_000
FORGET_HOST_AFTER_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class HostView:
    """One machine as the dashboard sees it."""

    host: str
    online: bool
    last_seen_ms: int
    #: An offline host (its record expired) has an empty record and no GPUs.
    record: HostRecord
    gpus: tuple[GpuRecord, ...]


@dataclass(frozen=True, slots=True)
class FleetView:
    hosts: tuple[HostView, ...]

    @property
    def gpu_count(self) -> int:
        return sum(len(h.gpus) for h in self.hosts)

    def host(self, name: str) -> HostView | None:
        """The machine called ``name``, if a supervisor registered it (within the last day)."""
        return next((h for h in self.hosts if h.host == name), None)


def encode_record(record: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(record, separators=(",", ":"), allow_nan=False, default=str)


def parse_fleet(
    hosts_with_scores: Sequence[tuple[Any, float]],
    host_raw: Sequence[Any],
    gpus_raw: Sequence[Any],
) -> FleetView:
    """Combine the raw replies of the fleet read into a :class:`FleetView`."""
    views = []
    for (host, seen), record_raw, gpu_raw in zip(
        hosts_with_scores, host_raw, gpus_raw, strict=True
    ):
        gpus = _load(gpu_raw, [])
        records = (GpuRecord.from_json(g) for g in gpus) if isinstance(gpus, list) else ()
        views.append(
            HostView(
                host=text(host),
                online=record_raw is not None,
                last_seen_ms=int(seen),
                record=HostRecord.from_json(_load(record_raw, {})),
                gpus=tuple(g for g in records if g is not None),
            )
        )
    views.sort(key=lambda v: v.host)
    return FleetView(tuple(views))


def _load(raw: Any, default: Any) -> Any:
    if raw is None:
        return default
    try:
        if orjson is not None:
            return orjson.loads(raw)
        return json.loads(text(raw))
    except ValueError:  # orjson's errors are ValueErrors too
        return default
