"""The fleet records: one definition for writer and readers, readable across versions.

A fleet is upgraded one machine at a time, so a newer supervisor and an older dashboard (or the
reverse) read each other's records: neither may crash, and neither may lose what it understands.
"""

from __future__ import annotations

import json
from typing import Any

from fleetq.fleet import encode_record, parse_fleet
from fleetq.records import (
    RECORD_SCHEMA,
    BlockedBy,
    GpuHealth,
    GpuJobRecord,
    GpuRecord,
    HostRecord,
    HostState,
    PullerStatus,
)

#: A GPU record exactly as supervisors published it before records had a schema.
OLD_GPU = {
    "index": 1,
    "name": "RTX 4090",
    "uuid": "GPU-1",
    "health": "degraded",
    "reasons": ["temperature 86°C near slowdown 90°C"],
    "status": "blocked",
    "blocked": "drained by operator",
    "drained": True,
    "services": ["comfyui"],
    "backends": {"comfyui": "http://127.0.0.1:8188"},
    "job": {"id": "j1", "service": "comfyui", "progress": 0.5, "progress_text": "KSampler",
            "started_ms": 1_700_000_000_000},
    "jobs_done": 7,
    "readings": {"utilization_gpu_pct": 97, "memory_used_mb": 4096, "ecc_uncorrected": None},
}  # fmt: skip

#: A host record as supervisors published it before records had a schema.
OLD_HOST = {
    "host": "box-1",
    "version": "0.1.0",
    "pid": 4242,
    "started_ms": 1_700_000_000_000,
    "heartbeat_ms": 1_700_000_001_000,
    "gpus": 2,
    "simulated": False,
    "state": "draining",
    "backends": {"comfyui": "http://127.0.0.1:{port}"},
}


def full_gpu() -> GpuRecord:
    return GpuRecord(
        index=3,
        name="A100",
        uuid="GPU-3",
        health=GpuHealth.UNHEALTHY,
        reasons=("XID 79: GPU has fallen off the bus",),
        status=PullerStatus.BLOCKED,
        blocked="GPU unhealthy: XID 79",
        blocked_by=BlockedBy.GPU_UNHEALTHY,
        services=("comfyui", "a1111"),
        backends={"comfyui": "http://h:1"},
        job=GpuJobRecord("j9", "a1111", 0.25, "step 5/20", 123),
        jobs_done=2,
        readings={"power_w": 301.5, "throttle_reasons": ["hw_slowdown"]},
    )


def wire(record: GpuRecord | HostRecord) -> Any:
    """The record as it travels: encoded as published, decoded as a reader gets it."""
    return json.loads(encode_record(record.to_json()))


def test_records_survive_the_wire_unchanged() -> None:
    gpu = full_gpu()
    assert GpuRecord.from_json(wire(gpu)) == gpu
    host = HostRecord(host="box-1", version="0.2.0", pid=7, gpus=1, state=HostState.RUNNING)
    assert HostRecord.from_json(wire(host)) == host
    assert wire(gpu)["schema"] == wire(host)["schema"] == RECORD_SCHEMA


def test_a_record_of_an_older_supervisor_reads_fully() -> None:
    gpu = GpuRecord.from_json(OLD_GPU)
    assert gpu is not None
    assert gpu.schema == 0  # published before the schema field existed
    assert (gpu.index, gpu.health, gpu.status) == (1, GpuHealth.DEGRADED, PullerStatus.BLOCKED)
    assert gpu.drained and gpu.blocked == "drained by operator" and gpu.blocked_by is None
    assert gpu.job == GpuJobRecord("j1", "comfyui", 0.5, "KSampler", 1_700_000_000_000)
    assert gpu.reading("utilization_gpu_pct") == 97.0 and gpu.reading("ecc_uncorrected") is None
    assert gpu.extra == {}
    host = HostRecord.from_json(OLD_HOST)
    assert host.draining and host.state is HostState.DRAINING and host.version == "0.1.0"
    assert host.gpus == 2 and host.schema == 0


def test_an_older_reader_finds_every_field_it_knew_with_its_type() -> None:
    """What the readers before typed records looked up by key is still there, same JSON type."""
    gpu = GpuRecord.from_json(OLD_GPU)
    assert gpu is not None
    new = wire(gpu)
    for key, old in OLD_GPU.items():
        assert new[key] == old, key
    host = wire(HostRecord.from_json(OLD_HOST))
    for key, old in OLD_HOST.items():
        assert host[key] == old, key


def test_fields_and_words_of_a_newer_supervisor_are_kept_not_fatal() -> None:
    newer = {
        **wire(full_gpu()),
        "schema": RECORD_SCHEMA + 1,
        "health": "overheating",  # a verdict this version does not know
        "status": "warming",
        "blocked_by": "model_loading",
        "eta_s": 12.5,
    }
    gpu = GpuRecord.from_json(newer)
    assert gpu is not None
    assert gpu.health is None and gpu.status is None and gpu.blocked_by is None
    assert gpu.schema == RECORD_SCHEMA + 1 and gpu.blocked == "GPU unhealthy: XID 79"
    # A gateway of this version relays the field it does not know.
    assert gpu.extra == {"eta_s": 12.5}
    assert wire(gpu)["eta_s"] == 12.5
    host = HostRecord.from_json({**OLD_HOST, "state": "upgrading", "tenants": ["a"]})
    assert host.state is None and not host.draining and host.extra == {"tenants": ["a"]}


def test_malformed_fields_read_as_not_available() -> None:
    gpu = GpuRecord.from_json(
        {
            "index": 0,
            "name": None,
            "health": ["healthy"],
            "reasons": "not a list",
            "drained": "yes",
            "job": {"service": "comfyui"},  # no id: no job
            "jobs_done": True,
            "readings": {"power_w": "300", "temperature_c": True, "fan_pct": 40},
            "backends": [],
        }
    )
    assert gpu == GpuRecord(index=0, readings=gpu.readings if gpu else {}, schema=0)
    assert gpu is not None
    assert gpu.reading("power_w") is None and gpu.reading("temperature_c") is None
    assert gpu.reading("fan_pct") == 40.0
    for junk in (None, [], "GPU", {"index": "0"}, {"index": True}, {"name": "no index"}):
        assert GpuRecord.from_json(junk) is None
    assert HostRecord.from_json("junk") == HostRecord(schema=0)


def test_the_fleet_read_keeps_good_records_and_drops_junk() -> None:
    gpus = encode_record([OLD_GPU, "junk", {"name": "no index"}, wire(full_gpu())])
    fleet = parse_fleet(
        [(b"box-1", 5.0), (b"box-2", 3.0)],
        [encode_record(OLD_HOST), None],
        [gpus, "{not json"],
    )
    box1, box2 = fleet.hosts
    assert box1.online and box1.record.host == "box-1"
    assert [g.index for g in box1.gpus] == [1, 3]
    assert not box2.online and box2.gpus == () and box2.record == HostRecord(schema=0)


def test_the_fleet_reads_the_same_with_or_without_orjson(monkeypatch: Any) -> None:
    # The dashboard's extra parses the records with orjson; a bare client with the standard
    # library: the same records, junk included, read the same either way.
    import fleetq.fleet

    gpus = encode_record([OLD_GPU, "junk", {"name": "no index"}, wire(full_gpu())])
    args = (
        [(b"box-1", 5.0), (b"box-2", 3.0), (b"box-3", 1.0)],
        [encode_record(OLD_HOST).encode(), None, b"\xff{"],
        [gpus.encode(), "{not json", encode_record([{"index": 1, "name": "\u00e9"}])],
    )
    assert fleetq.fleet.orjson is not None
    fast = parse_fleet(*args)
    monkeypatch.setattr(fleetq.fleet, "orjson", None)
    assert parse_fleet(*args) == fast
    assert [len(h.gpus) for h in fast.hosts] == [2, 0, 1]
