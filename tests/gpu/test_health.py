"""The health policy: every rule, its threshold, degraded vs unhealthy, and sticky findings."""

from __future__ import annotations

from dataclasses import replace

import pytest

from supervisor.gpu.health import (
    GpuHealthTracker,
    HealthFinding,
    HealthThresholds,
    HealthVerdict,
    judge,
)
from supervisor.gpu.readings import GpuReading, XidEvent

NOW = 1_700_000_000.0


def good(**changes: object) -> GpuReading:
    """A healthy H100 reading; keyword arguments override fields."""
    base = GpuReading(
        index=0,
        uuid="GPU-1",
        sampled_at_s=NOW,
        utilization_gpu_pct=0,
        memory_total_mb=81559,
        memory_used_mb=531,
        memory_free_mb=81028,
        temperature_c=40,
        temperature_slowdown_c=90,
        temperature_shutdown_c=95,
        throttle_reasons=("gpu_idle",),
        ecc_volatile_uncorrected=0,
        ecc_aggregate_uncorrected=0,
        remapped_rows_uncorrectable=0,
        remap_pending=False,
        remap_failure=False,
        recovery_action="none",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def xid(n: int, at: float = NOW, gpu: int = 0) -> XidEvent:
    return XidEvent(gpu, n, at)


def test_a_good_reading_is_healthy() -> None:
    verdict = judge(None, good())
    assert verdict == HealthVerdict("healthy", ())
    assert verdict.can_claim


def test_all_unknown_readings_are_healthy_never_failed() -> None:
    empty = GpuReading(index=0, uuid=None, sampled_at_s=NOW)
    assert judge(empty, empty, min_free_mb=4096).status == "healthy"


@pytest.mark.parametrize(
    ("reading", "status", "reason"),
    [
        (good(lost=True, error="GPU is lost"), "unhealthy", "GPU lost: GPU is lost"),
        (
            good(error="GPU requires restart"),
            "unhealthy",
            "NVML hard failure: GPU requires restart",
        ),
        (good(temperature_c=92), "unhealthy", "temperature 92 C >= slowdown 90 C"),
        (good(temperature_c=90), "unhealthy", "temperature 90 C >= slowdown 90 C"),
        (good(temperature_c=85), "degraded", "temperature 85 C within 5 C of slowdown 90 C"),
        (good(remap_failure=True), "unhealthy", "row remap failure: replace or reset the GPU"),
        (good(remap_pending=True), "degraded", "row remap pending: reset the GPU when idle"),
        (
            good(remapped_rows_uncorrectable=512),
            "degraded",
            "512 uncorrectable remapped rows (>= 512)",
        ),
        (good(retired_pages_sbe=60, retired_pages_dbe=3), "unhealthy", "63 retired pages (>= 63)"),
        (
            good(retired_pages_pending=True),
            "degraded",
            "page retirement pending: reset the GPU when idle",
        ),
        (
            good(throttle_reasons=("sw_power_cap", "hw_thermal_slowdown")),
            "degraded",
            "clocks slowed: hw_thermal_slowdown",
        ),
        (
            good(recovery_action="gpu_reset"),
            "unhealthy",
            "driver asks for recovery action gpu_reset",
        ),
        (
            good(recovery_action="drain_p2p"),
            "degraded",
            "driver asks for recovery action drain_p2p",
        ),
    ],
)
def test_rules(reading: GpuReading, status: str, reason: str) -> None:
    verdict = judge(good(), reading)
    assert verdict.status == status
    assert reason in verdict.reasons


@pytest.mark.parametrize(
    "reading",
    [
        good(temperature_c=84),  # just outside the margin
        good(throttle_reasons=("sw_power_cap",)),  # normal under load
        good(remapped_rows_uncorrectable=511),
        good(retired_pages_sbe=62, retired_pages_dbe=0),
        good(temperature_slowdown_c=None, temperature_c=120),  # no threshold, no fallback
    ],
)
def test_just_below_thresholds_is_healthy(reading: GpuReading) -> None:
    assert judge(good(), reading).status == "healthy"


def test_free_memory_rule_uses_the_callers_minimum() -> None:
    reading = good(memory_free_mb=1024)
    assert judge(None, reading).status == "healthy"
    assert judge(None, reading, min_free_mb=1024).status == "healthy"
    verdict = judge(None, reading, min_free_mb=4096)
    assert verdict.status == "unhealthy" and not verdict.can_claim
    assert verdict.reasons == ("free memory 1024 MiB < required 4096 MiB",)


def test_new_uncorrectable_ecc_errors_are_unhealthy() -> None:
    verdict = judge(good(), good(ecc_volatile_uncorrected=2, ecc_aggregate_uncorrected=2))
    assert verdict.status == "unhealthy"
    assert verdict.reasons == ("2 new uncorrectable ECC errors",)
    # Volatile unknown: the aggregate counter still shows growth.
    before = good(ecc_volatile_uncorrected=None, ecc_aggregate_uncorrected=5)
    after = good(ecc_volatile_uncorrected=None, ecc_aggregate_uncorrected=6)
    assert judge(before, after).reasons == ("1 new uncorrectable ECC error",)
    # A drop is a counter reset, not an error.
    assert judge(good(ecc_volatile_uncorrected=3), good()).status == "healthy"


def test_preexisting_uncorrectable_errors_only_degrade() -> None:
    verdict = judge(None, good(ecc_volatile_uncorrected=3))
    assert verdict.status == "degraded"
    assert verdict.reasons == ("3 uncorrectable ECC errors since driver load",)


def test_critical_xid_is_unhealthy_and_others_degrade() -> None:
    assert judge(None, good(), [xid(79)]) == HealthVerdict(
        "unhealthy", ("XID 79: GPU has fallen off the bus",)
    )
    for critical in (48, 95, 64, 119, 140):
        assert judge(None, good(), [xid(critical)]).status == "unhealthy"
    for benign in (13, 31, 43, 63, 94, 12345):
        assert judge(None, good(), [xid(benign)]).status == "degraded"
    assert judge(None, good(), [xid(13)]).reasons == ("XID 13: graphics engine exception",)


def test_thresholds_are_configurable() -> None:
    t = HealthThresholds(
        critical_xids=frozenset({13}),
        temperature_margin_c=0,
        fallback_slowdown_c=80,
        degraded_clock_events=frozenset({"sw_power_cap"}),
        remapped_rows_uncorrectable_warn=1,
        retired_pages_max=1,
        unhealthy_recovery_actions=frozenset(),
    )
    assert judge(None, good(), [xid(13)], t).status == "unhealthy"
    assert judge(None, good(), [xid(79)], t).status == "degraded"
    assert judge(None, good(temperature_c=89), thresholds=t).status == "healthy"
    assert judge(
        None, good(temperature_slowdown_c=None, temperature_c=80), thresholds=t
    ).reasons == ("temperature 80 C >= slowdown 80 C",)
    assert judge(None, good(throttle_reasons=("sw_power_cap",)), thresholds=t).status == "degraded"
    assert judge(None, good(remapped_rows_uncorrectable=1), thresholds=t).status == "degraded"
    assert judge(None, good(retired_pages_dbe=1), thresholds=t).status == "unhealthy"
    assert judge(None, good(recovery_action="gpu_reset"), thresholds=t).status == "degraded"


def test_unhealthy_reasons_come_first_and_are_not_repeated() -> None:
    verdict = HealthVerdict.from_findings(
        [
            HealthFinding("degraded", "b"),
            HealthFinding("unhealthy", "a"),
            HealthFinding("degraded", "b"),
            HealthFinding("unhealthy", "c"),
        ]
    )
    assert verdict == HealthVerdict("unhealthy", ("a", "c", "b"))


def test_verdict_json_round_trip_and_validation() -> None:
    verdict = HealthVerdict("degraded", ("XID 13: graphics engine exception",))
    assert verdict.to_json_dict() == {"status": "degraded", "reasons": [verdict.reasons[0]]}
    assert HealthVerdict.from_json_dict(verdict.to_json_dict()) == verdict
    with pytest.raises(ValueError):
        HealthVerdict.from_json_dict({"status": "fine", "reasons": []})
    with pytest.raises(ValueError):
        HealthVerdict.from_json_dict({"status": "healthy", "reasons": "none"})


# --- the tracker: memory across checks ---------------------------------------------------------


def test_critical_xid_is_sticky_until_cleared() -> None:
    tracker = GpuHealthTracker()
    tracker.record_xid(xid(79))
    first = tracker.update(good(), now_s=NOW)
    assert first.status == "unhealthy"
    later = tracker.update(good(), now_s=NOW + 86_400)  # no new events, a day later
    assert later == first
    assert tracker.sticky_reasons == ("XID 79: GPU has fallen off the bus",)
    tracker.clear()
    assert tracker.last_verdict is None
    assert tracker.update(good(), now_s=NOW + 86_401).status == "healthy"
    assert tracker.recent_xids == (xid(79),)  # history survives the clear


def test_new_ecc_errors_are_sticky_but_not_counted_twice() -> None:
    tracker = GpuHealthTracker()
    tracker.update(good(), now_s=NOW)
    bad = good(ecc_volatile_uncorrected=1, ecc_aggregate_uncorrected=1)
    assert tracker.update(bad, now_s=NOW).status == "unhealthy"
    assert tracker.update(bad, now_s=NOW + 1).reasons == ("1 new uncorrectable ECC error",)
    tracker.clear()
    assert tracker.update(bad, now_s=NOW + 2).status == "healthy"  # baseline moved on


def test_non_critical_xid_degrades_for_the_hold_window_only() -> None:
    tracker = GpuHealthTracker(HealthThresholds(xid_hold_s=60))
    tracker.record_xid(xid(13, at=NOW))
    assert tracker.update(good(), now_s=NOW).status == "degraded"
    assert tracker.update(good(), now_s=NOW + 59).reasons == ("XID 13: graphics engine exception",)
    assert tracker.update(good(), now_s=NOW + 61).status == "healthy"


def test_conditions_that_pass_are_not_sticky() -> None:
    tracker = GpuHealthTracker()
    assert tracker.update(good(temperature_c=95), now_s=NOW).status == "unhealthy"
    assert tracker.update(good(temperature_c=50), now_s=NOW + 1).status == "healthy"
    assert tracker.update(good(memory_free_mb=10), min_free_mb=100).status == "unhealthy"
    assert tracker.update(good(), min_free_mb=100).status == "healthy"


def test_lost_reading_keeps_the_previous_baseline() -> None:
    tracker = GpuHealthTracker()
    tracker.update(good(ecc_volatile_uncorrected=0), now_s=NOW)
    lost = GpuReading(index=0, uuid="GPU-1", sampled_at_s=NOW, lost=True, error="GPU is lost")
    assert tracker.update(lost, now_s=NOW).status == "unhealthy"
    verdict = tracker.update(good(ecc_volatile_uncorrected=4), now_s=NOW)
    assert verdict.reasons == ("4 new uncorrectable ECC errors",)


def test_xid_watch_error_degrades() -> None:
    tracker = GpuHealthTracker()
    verdict = tracker.update(good(), now_s=NOW, xid_watch_error="GPU is lost")
    assert verdict == HealthVerdict("degraded", ("XID events not watched: GPU is lost",))
