"""The GPU health policy: readings plus XID events in, a verdict a dashboard can show out.

Statuses: ``healthy`` and ``degraded`` GPUs may claim jobs (degraded says "watch this");
``unhealthy`` GPUs must not claim. Rules (defaults from DCGM and NVIDIA's XID catalog, see
``shared/reference/nvml-and-textual.md`` A.5-A.7), unhealthy unless marked degraded:

- the GPU is lost or NVML reports a hard failure (reset required, corrupted InfoROM);
- a critical XID (``HealthThresholds.critical_xids``) - **sticky**;
- new uncorrectable ECC errors since the previous reading - **sticky**;
- the row remapper reports a failure; retired pages >= ``retired_pages_max``;
- temperature >= the GPU's slowdown threshold;
- free memory below the caller's ``min_free_mb``;
- the driver asks for a recovery action in ``unhealthy_recovery_actions``;
- degraded: any other XID (held for ``xid_hold_s``), temperature within ``temperature_margin_c``
  of slowdown, a thermal/power clock slowdown, a pending row remap or page retirement,
  uncorrectable remapped rows >= ``remapped_rows_uncorrectable_warn``, uncorrectable ECC errors
  that predate the first reading, any other recovery action, XID events not being watched.

Sticky findings stay until ``GpuHealthTracker.clear()`` (an operator action) or a supervisor
restart: a GPU that threw XID 79 or a double-bit error needs a human or a reset, and the event
will not repeat. Everything else follows the current reading. A value NVML could not read
(``None``) never fails a rule.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from supervisor.gpu.codes import CRITICAL_XIDS, THERMAL_OR_POWER_SLOWDOWNS
from supervisor.gpu.readings import GpuReading, JsonDict, XidEvent

HealthStatus = Literal["healthy", "degraded", "unhealthy"]
_RANK: dict[str, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


@dataclass(frozen=True)
class HealthThresholds:
    """Tunable limits of the health policy; every default is sourced in the comment beside it."""

    # XIDs that make a GPU unhealthy until cleared: DCGM FAIL and NVIDIA RESET_GPU / RESTART_BM
    # buckets (codes.CRITICAL_XIDS). Others only degrade.
    critical_xids: frozenset[int] = CRITICAL_XIDS
    # How long a non-critical XID keeps the GPU "degraded" on the dashboard.
    xid_hold_s: float = 300.0
    # Degraded this many degrees below the slowdown threshold (unhealthy at the threshold).
    temperature_margin_c: int = 5
    # Slowdown threshold for GPUs that do not report one; None skips the temperature rule there.
    fallback_slowdown_c: int | None = None
    # Clock event reasons that degrade (mask 0xE8, reference A.3). sw_power_cap is normal load.
    degraded_clock_events: frozenset[str] = THERMAL_OR_POWER_SLOWDOWNS
    # DCGM memory watch: uncorrectable remapped rows >= 512 -> WARN.
    remapped_rows_uncorrectable_warn: int = 512
    # DCGM memory watch: retired pages (SBE + DBE) >= 63 -> FAIL.
    retired_pages_max: int = 63
    # DCGM driver watch: these recovery actions FAIL; drain_p2p (and unknown ones) only WARN.
    unhealthy_recovery_actions: frozenset[str] = frozenset(
        {"gpu_reset", "node_reboot", "drain_and_reset", "bus_reset", "system_reboot"}
    )


@dataclass(frozen=True)
class HealthFinding:
    """One rule that fired. ``sticky`` findings are held by the tracker until cleared."""

    status: Literal["degraded", "unhealthy"]
    reason: str
    sticky: bool = False


@dataclass(frozen=True)
class HealthVerdict:
    """The health of one GPU: a status and short reasons an operator can act on."""

    status: HealthStatus
    reasons: tuple[str, ...] = ()

    @property
    def can_claim(self) -> bool:
        """Whether a puller may claim a job on this GPU (healthy or degraded)."""
        return self.status != "unhealthy"

    @classmethod
    def from_findings(cls, findings: Iterable[HealthFinding]) -> HealthVerdict:
        """Worst status wins; reasons are de-duplicated, unhealthy ones first."""
        ordered = sorted(findings, key=lambda f: -_RANK[f.status])  # stable: keeps rule order
        reasons = tuple(dict.fromkeys(f.reason for f in ordered))
        status: HealthStatus = ordered[0].status if ordered else "healthy"
        return cls(status, reasons)

    def to_json_dict(self) -> JsonDict:
        """``{"status": ..., "reasons": [...]}``."""
        return {"status": self.status, "reasons": list(self.reasons)}

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> HealthVerdict:
        """Rebuild from ``to_json_dict()``; raises ``ValueError`` on bad input."""
        status = data.get("status") if isinstance(data, Mapping) else None
        reasons = data.get("reasons", []) if isinstance(data, Mapping) else None
        if status not in _RANK:
            raise ValueError(f"HealthVerdict.status: expected one of {list(_RANK)}, got {status!r}")
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise ValueError(f"HealthVerdict.reasons: expected a list of strings, got {reasons!r}")
        return cls(status, tuple(reasons))


def assess(
    previous: GpuReading | None,
    current: GpuReading,
    xids: Sequence[XidEvent] = (),
    thresholds: HealthThresholds = HealthThresholds(),
    *,
    min_free_mb: int | None = None,
) -> list[HealthFinding]:
    """Apply every rule to one GPU; stateless. ``xids`` are the events since the last check."""
    t = thresholds
    findings = [_xid_finding(event, t) for event in xids]
    if current.failed:
        what = "GPU lost" if current.lost else "NVML hard failure"
        findings.append(HealthFinding("unhealthy", f"{what}: {current.error or 'no details'}"))
        return findings
    findings += _memory_errors(previous, current, t)
    findings += _temperature(current, t)
    if (
        min_free_mb is not None
        and current.memory_free_mb is not None
        and current.memory_free_mb < min_free_mb
    ):
        findings.append(
            HealthFinding(
                "unhealthy",
                f"free memory {current.memory_free_mb} MiB < required {min_free_mb} MiB",
            )
        )
    slowdowns = [r for r in current.throttle_reasons or () if r in t.degraded_clock_events]
    if slowdowns:
        findings.append(HealthFinding("degraded", "clocks slowed: " + ", ".join(slowdowns)))
    action = current.recovery_action
    if action is not None and action != "none":
        status: Literal["degraded", "unhealthy"] = (
            "unhealthy" if action in t.unhealthy_recovery_actions else "degraded"
        )
        findings.append(HealthFinding(status, f"driver asks for recovery action {action}"))
    return findings


def judge(
    previous: GpuReading | None,
    current: GpuReading,
    xids: Sequence[XidEvent] = (),
    thresholds: HealthThresholds = HealthThresholds(),
    *,
    min_free_mb: int | None = None,
) -> HealthVerdict:
    """The verdict for one reading, without memory of earlier checks (see ``GpuHealthTracker``)."""
    return HealthVerdict.from_findings(
        assess(previous, current, xids, thresholds, min_free_mb=min_free_mb)
    )


def _xid_finding(event: XidEvent, t: HealthThresholds) -> HealthFinding:
    if event.xid in t.critical_xids:
        return HealthFinding("unhealthy", event.description, sticky=True)
    return HealthFinding("degraded", event.description)


def _memory_errors(
    previous: GpuReading | None, current: GpuReading, t: HealthThresholds
) -> list[HealthFinding]:
    findings: list[HealthFinding] = []
    new_errors = _new_uncorrectable_ecc(previous, current)
    if new_errors:
        noun = "error" if new_errors == 1 else "errors"
        findings.append(
            HealthFinding("unhealthy", f"{new_errors} new uncorrectable ECC {noun}", sticky=True)
        )
    elif previous is None and current.ecc_volatile_uncorrected:
        # Errors from before the supervisor started: DCGM would FAIL, but they may be old news
        # from a job that already failed; warn and let the operator decide (reset clears them).
        findings.append(
            HealthFinding(
                "degraded",
                f"{current.ecc_volatile_uncorrected} uncorrectable ECC errors since driver load",
            )
        )
    if current.remap_failure:
        findings.append(HealthFinding("unhealthy", "row remap failure: replace or reset the GPU"))
    if current.remap_pending:
        findings.append(HealthFinding("degraded", "row remap pending: reset the GPU when idle"))
    rows = current.remapped_rows_uncorrectable
    if rows is not None and rows >= t.remapped_rows_uncorrectable_warn:
        findings.append(
            HealthFinding(
                "degraded",
                f"{rows} uncorrectable remapped rows (>= {t.remapped_rows_uncorrectable_warn})",
            )
        )
    if current.retired_pages_sbe is not None or current.retired_pages_dbe is not None:
        retired = (current.retired_pages_sbe or 0) + (current.retired_pages_dbe or 0)
        if retired >= t.retired_pages_max:
            findings.append(
                HealthFinding("unhealthy", f"{retired} retired pages (>= {t.retired_pages_max})")
            )
    if current.retired_pages_pending:
        findings.append(
            HealthFinding("degraded", "page retirement pending: reset the GPU when idle")
        )
    return findings


def _new_uncorrectable_ecc(previous: GpuReading | None, current: GpuReading) -> int:
    """Growth of the uncorrectable ECC count since ``previous`` (volatile, else aggregate)."""
    if previous is None:
        return 0
    for before, now in (
        (previous.ecc_volatile_uncorrected, current.ecc_volatile_uncorrected),
        (previous.ecc_aggregate_uncorrected, current.ecc_aggregate_uncorrected),
    ):
        if before is not None and now is not None:
            # A drop means the counter was reset (driver reload, GPU reset): nothing new.
            return max(0, now - before)
    return 0


def _temperature(current: GpuReading, t: HealthThresholds) -> list[HealthFinding]:
    temperature = current.temperature_c
    slowdown = current.temperature_slowdown_c
    if slowdown is None:
        slowdown = t.fallback_slowdown_c
    if temperature is None or slowdown is None:
        return []
    if temperature >= slowdown:
        return [HealthFinding("unhealthy", f"temperature {temperature} C >= slowdown {slowdown} C")]
    if temperature >= slowdown - t.temperature_margin_c:
        return [
            HealthFinding(
                "degraded",
                f"temperature {temperature} C within {t.temperature_margin_c} C"
                f" of slowdown {slowdown} C",
            )
        ]
    return []


@dataclass
class GpuHealthTracker:
    """Health state of one GPU across checks: the previous reading, XIDs, sticky findings.

    Not thread-safe: the monitor touches it only from the event loop.
    """

    thresholds: HealthThresholds = field(default_factory=HealthThresholds)
    history_size: int = 32
    _previous: GpuReading | None = field(default=None, init=False)
    _pending_xids: list[XidEvent] = field(default_factory=list, init=False)
    _held_xids: list[XidEvent] = field(default_factory=list, init=False)
    _sticky: dict[str, HealthFinding] = field(default_factory=dict, init=False)
    _history: deque[XidEvent] = field(init=False)
    _last: HealthVerdict | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._history = deque(maxlen=self.history_size)

    def record_xid(self, event: XidEvent) -> None:
        """Remember an XID for the next ``update`` (and for ``recent_xids``)."""
        self._pending_xids.append(event)
        self._history.append(event)

    def update(
        self,
        reading: GpuReading,
        *,
        min_free_mb: int | None = None,
        now_s: float | None = None,
        xid_watch_error: str | None = None,
    ) -> HealthVerdict:
        """Judge ``reading`` against the previous one and the XIDs recorded since, then hold
        sticky findings and recent non-critical XIDs. ``now_s`` is wall-clock time."""
        now_s = time.time() if now_s is None else now_s
        xids, self._pending_xids = self._pending_xids, []
        findings = assess(self._previous, reading, xids, self.thresholds, min_free_mb=min_free_mb)
        for finding in findings:
            if finding.sticky:
                self._sticky.setdefault(finding.reason, finding)
        # Non-critical XIDs stay visible for xid_hold_s, not just for the check that saw them.
        horizon_s = now_s - self.thresholds.xid_hold_s
        self._held_xids = [
            e
            for e in [*self._held_xids, *xids]
            if e.xid not in self.thresholds.critical_xids and e.timestamp_s >= horizon_s
        ]
        held = [_xid_finding(e, self.thresholds) for e in self._held_xids]
        extra = []
        if xid_watch_error is not None:
            extra.append(HealthFinding("degraded", f"XID events not watched: {xid_watch_error}"))
        if not reading.failed:
            # Keep the last good counters as the baseline: a lost GPU has none.
            self._previous = reading
        self._last = HealthVerdict.from_findings([*self._sticky.values(), *findings, *held, *extra])
        return self._last

    def clear(self) -> None:
        """Forget sticky findings and held XIDs (an operator has dealt with the GPU)."""
        self._sticky.clear()
        self._held_xids.clear()
        self._pending_xids.clear()
        self._last = None

    @property
    def last_verdict(self) -> HealthVerdict | None:
        """The verdict of the latest ``update`` (``None`` before the first, or after ``clear``)."""
        return self._last

    @property
    def sticky_reasons(self) -> tuple[str, ...]:
        """Reasons held until ``clear()``."""
        return tuple(self._sticky)

    @property
    def recent_xids(self) -> tuple[XidEvent, ...]:
        """The last ``history_size`` XIDs, oldest first."""
        return tuple(self._history)
