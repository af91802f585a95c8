"""One fault-kind type: the kind an attempt is charged as and the kind a job error names."""

from __future__ import annotations

import json

from fleetq.model import FaultKind, JobError


def test_a_job_error_names_its_kind_as_the_fault_kind() -> None:
    error = JobError("Timeout", "too slow", kind=FaultKind.JOB)
    assert json.loads(error.to_json())["kind"] == "job"
    back = JobError.from_json(error.to_json())
    assert back == error and back is not None and back.kind is FaultKind.JOB
    # What the reaper writes in Lua reads as the same type.
    reaped = JobError.from_json('{"type":"LeaseLost","message":"m","kind":"infra"}')
    assert reaped is not None and reaped.kind is FaultKind.INFRA


def test_an_unknown_or_missing_kind_reads_as_none() -> None:
    newer = JobError.from_json('{"type":"X","message":"m","kind":"tenant_quota"}')
    assert newer is not None and newer.kind is None and newer.type == "X"
    old = JobError.from_json('{"type":"X","message":"m"}')
    assert old is not None and old.kind is None and "kind" not in json.loads(old.to_json())
