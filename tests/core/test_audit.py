"""The audit trail of operator actions: who retried a job, set its priority, paused a service,
drained a machine, from the client and from the command line (``cli:user@host``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetq import Client, Settings
from fleetq.errors import InvalidArgument
from fleetq.identity import MAX_IDENTITY, operator_identity
from fleetq.model import FaultKind, JobError
from fleetq.worker import WorkerQueue
from tests.core.test_cli import fleetq, register_host

OPERATOR = "tui:ana@ops-1"


def job_stream(client: Client, job_id: str) -> list[dict[str, str]]:
    entries = client.store.command("xrange", client.store.keys.job_events(job_id), "-", "+")
    return [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in entries]


def fleet_events(client: Client, kind: str) -> list[dict[str, str]]:
    entries = client.store.command("xrange", client.store.keys.events, "-", "+")
    decoded = [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in entries]
    return [e for e in decoded if e["type"] == kind]


async def failed_job(client: Client, worker: WorkerQueue, graph: Any) -> str:
    job = client.submit(graph)
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None
    await worker.fail(claimed, FaultKind.FINAL, JobError("ValueError", "bad ckpt"))
    return job.id


async def test_retry_and_set_priority_record_who_asked(
    client: Client, worker: WorkerQueue, graph: Any
) -> None:
    job_id = await failed_job(client, worker, graph)
    assert client.retry(job_id, by=OPERATOR) == 0
    assert client.bump(job_id, 7, by="cli:bo@ops-2") == 0
    actions = [e for e in job_stream(client, job_id) if e["type"] in ("retried", "bumped")]
    assert actions == [
        {"type": "retried", "by": OPERATOR},
        {"type": "bumped", "from": "0", "to": "7", "by": "cli:bo@ops-2"},
    ]
    assert fleet_events(client, "retried")[0]["by"] == OPERATOR
    assert fleet_events(client, "bumped")[0]["by"] == "cli:bo@ops-2"


def test_a_resent_priority_change_is_one_timeline_entry(client: Client, graph: Any) -> None:
    job = client.submit(graph)
    call = client.store.protocol.bump(job.id, 3, by=OPERATOR)  # a resend has the same args
    assert client.store.run(call) == 0
    assert client.store.run(call) == 0
    assert [e["type"] for e in job_stream(client, job.id)].count("bumped") == 1


def test_pause_and_drain_keep_who_made_the_last_change(client: Client) -> None:
    assert client.changed_by(["paused:comfyui", "drained:gpu-1"]) == {}
    assert client.pause("comfyui", by=OPERATOR)
    assert client.drain("gpu-1:0", by="cli:bo@ops-2")
    assert client.changed_by(["paused:comfyui", "paused:a1111", "drained:gpu-1:0"]) == {
        "paused:comfyui": OPERATOR,
        "drained:gpu-1:0": "cli:bo@ops-2",
    }
    assert fleet_events(client, "paused")[0]["by"] == OPERATOR
    drained = fleet_events(client, "drained")[0]
    assert (drained["target"], drained["by"]) == ("gpu-1:0", "cli:bo@ops-2")

    assert client.resume("comfyui", by="cli:bo@ops-2")
    assert client.pause("comfyui", by=OPERATOR)  # paused again, by the first
    assert client.changed_by(["paused:comfyui"]) == {"paused:comfyui": OPERATOR}
    assert [e["by"] for e in fleet_events(client, "resumed")] == ["cli:bo@ops-2"]
    assert client.undrain("gpu-1:0", by=OPERATOR)
    assert client.changed_by(["drained:gpu-1:0"]) == {"drained:gpu-1:0": OPERATOR}
    assert client.changed_by([]) == {}


def test_who_is_text_of_bounded_length(client: Client, graph: Any) -> None:
    job = client.submit(graph)
    with pytest.raises(InvalidArgument, match="who asked must be text"):
        client.bump(job.id, 3, by=7)  # type: ignore[arg-type]
    assert client.status(job.id).priority == 0  # nothing written
    client.bump(job.id, 3, by="x" * 1000)
    assert job_stream(client, job.id)[-1]["by"] == "x" * MAX_IDENTITY


async def test_cli_actions_are_recorded_as_cli_user_at_host(
    settings: Settings, client: Client, worker: WorkerQueue, graph: Any
) -> None:
    who = operator_identity("cli")  # the CLI runs as this user on this machine
    assert who.startswith("cli:") and "@" in who
    job_id = await failed_job(client, worker, graph)
    assert fleetq(settings, "retry", job_id).returncode == 0
    assert fleetq(settings, "bump", job_id, "4").returncode == 0
    assert fleetq(settings, "cancel", job_id).returncode == 0
    bys = [(e["type"], e.get("by")) for e in job_stream(client, job_id) if "by" in e]
    assert bys == [("retried", who), ("bumped", who), ("cancelled", who)]

    await register_host(settings, "gpu-1", gpus=1)
    assert fleetq(settings, "pause", "comfyui").returncode == 0
    assert fleetq(settings, "drain", "gpu-1:0").returncode == 0
    client.drain("gpu-1", by=OPERATOR)
    shown = fleetq(settings, "stats").stdout
    assert f"paused: comfyui (by {who})" in shown
    assert f"drained: gpu-1 (by {OPERATOR}), gpu-1:0 (by {who})" in shown


def test_control_commands_carry_who_asked(client: Client) -> None:
    client.send_control("gpu-1", {"type": "clear-health", "gpu": 0}, by=OPERATOR)
    entries = client.store.command("xrange", client.store.keys.control("gpu-1"), "-", "+")
    command = json.loads(entries[-1][1][b"command"])
    assert command == {"type": "clear-health", "gpu": 0, "by": OPERATOR}
