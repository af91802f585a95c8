"""Fleet records: what each supervisor publishes about its host and GPUs, and how a dashboard
reads them back.

A supervisor writes, every second, one JSON host record and one JSON list of GPU records, each
with a time to live; a machine that stops publishing disappears (shown as offline, never as
zeros). The read is O(hosts): one ZRANGE and two MGETs, whatever the queue size.

GPU record fields (``None`` means "not available on this GPU", shown as N/A)::

    index, name, uuid, health ("healthy" | "degraded" | "unhealthy" | "lost"), reasons [str],
    blocked (why the puller is not claiming, or None), drained (bool), services [str],
    job {id, service, progress, progress_text, started_ms} or None,
    readings {utilization_gpu_pct, utilization_memory_pct, memory_used_mb, memory_total_mb,
              temperature_c, temperature_slowdown_c, power_w, power_limit_w, fan_pct,
              sm_clock_mhz, throttle_reasons [str], ecc_uncorrected, ...}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetq.protocol import text

HOST_TTL_MS = 5_000
FORGET_HOST_AFTER_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class HostView:
    """One machine as the dashboard sees it."""

    host: str
    online: bool
    last_seen_ms: int
    record: Mapping[str, Any]
    gpus: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
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
        record = _load(record_raw, {})
        gpus = _load(gpu_raw, [])
        views.append(
            HostView(
                host=text(host),
                online=record_raw is not None,
                last_seen_ms=int(seen),
                record=record if isinstance(record, dict) else {},
                gpus=tuple(g for g in gpus if isinstance(g, dict))
                if isinstance(gpus, list)
                else (),
            )
        )
    views.sort(key=lambda v: v.host)
    return FleetView(tuple(views))


def _load(raw: Any, default: Any) -> Any:
    if raw is None:
        return default
    try:
        return json.loads(text(raw))
    except ValueError:
        return default
