"""Snapshots, their JSON form, and the code tables."""

from __future__ import annotations

import json

import pynvml
import pytest

from supervisor.gpu import codes
from supervisor.gpu.readings import GpuIdentity, GpuReading, XidEvent


def full_reading() -> GpuReading:
    return GpuReading(
        index=0,
        uuid="GPU-1",
        sampled_at_s=1.5,
        utilization_gpu_pct=97,
        memory_total_mb=81559,
        memory_free_mb=100,
        power_w=455.5,
        throttle_reasons=("sw_power_cap",),
        remap_pending=False,
        recovery_action="none",
    )


def test_unavailable_values_render_as_none_in_json() -> None:
    data = GpuReading(index=1, uuid=None, sampled_at_s=2.0).to_json_dict()
    assert data["fan_pct"] is None and data["ecc_volatile_uncorrected"] is None
    assert data["throttle_reasons"] is None and data["uuid"] is None
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    "snapshot",
    [
        full_reading(),
        GpuReading(index=3, uuid=None, sampled_at_s=0.0, lost=True, error="GPU is lost"),
        GpuIdentity(0, "GPU-1", "NVIDIA H100 80GB HBM3", "00000000:18:00.0", 81559),
        GpuIdentity(1, None, None, None, None),
        XidEvent(gpu_index=2, xid=79, timestamp_s=3.25),
    ],
)
def test_json_round_trip(snapshot: GpuReading | GpuIdentity | XidEvent) -> None:
    data = json.loads(json.dumps(snapshot.to_json_dict()))
    assert type(snapshot).from_json_dict(data) == snapshot


def test_from_json_fills_missing_optional_fields_with_none() -> None:
    r = GpuReading.from_json_dict({"index": 0, "uuid": None, "sampled_at_s": 1})
    assert r.sampled_at_s == 1.0 and isinstance(r.sampled_at_s, float)
    assert r.temperature_c is None and r.lost is False


@pytest.mark.parametrize(
    "data",
    [
        {"uuid": None, "sampled_at_s": 1.0},  # index missing
        {"index": "0", "uuid": None, "sampled_at_s": 1.0},
        {"index": True, "uuid": None, "sampled_at_s": 1.0},  # bool is not an int here
        {"index": 0, "uuid": None, "sampled_at_s": 1.0, "lost": 1},
        {"index": 0, "uuid": None, "sampled_at_s": 1.0, "throttle_reasons": "hw_slowdown"},
        {"index": 0, "uuid": None, "sampled_at_s": 1.0, "throttle_reasons": [1]},
        {"index": 0, "uuid": 7, "sampled_at_s": 1.0},
    ],
)
def test_from_json_rejects_wrong_types(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GpuReading.from_json_dict(data)


def test_from_json_rejects_non_objects() -> None:
    with pytest.raises(ValueError):
        XidEvent.from_json_dict([1, 2])  # type: ignore[arg-type]


def test_xid_description() -> None:
    assert XidEvent(0, 79, 0.0).description == "XID 79: GPU has fallen off the bus"
    assert codes.describe_xid(12345) == "XID 12345"


def test_clock_event_bits_match_pynvml() -> None:
    for bit, name in codes.CLOCK_EVENT_REASONS.items():
        camel = "".join(part.capitalize() for part in name.split("_"))
        assert getattr(pynvml, f"nvmlClocksThrottleReason{camel}") == bit, name
    assert codes.decode_clock_event_reasons(0xE8) == tuple(
        sorted(codes.THERMAL_OR_POWER_SLOWDOWNS, key=list(codes.CLOCK_EVENT_REASONS.values()).index)
    )
    assert codes.decode_clock_event_reasons(0x801) == ("gpu_idle", "0x800")
    assert codes.decode_clock_event_reasons(0) == ()


def test_recovery_actions_match_pynvml() -> None:
    for value, name in codes.RECOVERY_ACTIONS.items():
        assert getattr(pynvml, f"NVML_GPU_RECOVERY_ACTION_{name.upper()}") == value
    assert codes.describe_recovery_action(42) == "action_42"
