"""The ACL roles of scripts/acl_rules.py against a real redis-server.

Redis 7 checks the keys a script declares (read and write for EVALSHA) before it runs, and
every command inside the script as it runs. A refused script must leave nothing behind:
Redis does not roll back a script that fails half way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from security_testkit import ROOT, Roles, load_acl_rules

from fleetq import Client
from fleetq.demo.embedded import RedisServer
from fleetq.errors import FleetqError, PermissionDenied
from fleetq.model import FaultKind, JobError, JobState, Output
from fleetq.store import AsyncStore
from fleetq.worker import WorkerQueue
from supervisor.app import Supervisor
from supervisor.config import BackendSpec, SupervisorConfig
from supervisor.sim.comfyui import serve_comfyui
from supervisor.sim.comfyui.workflows import fake_work_workflow

BODY = {"prompt": "a lighthouse", "steps": 4}
PNG = Output("out.png", "image/png", b"\x89PNG\r\n\x1a\nbytes")


def snapshot(roles: Roles) -> dict[bytes, Any]:
    """Every key of the namespace with its type and content, to compare before and after."""
    admin = roles.admin()
    try:
        out: dict[bytes, Any] = {}
        for key in admin.scan_iter(match="{" + roles.namespace + "}:*"):
            kind = admin.type(key)
            if kind == b"hash":
                out[key] = admin.hgetall(key)
            elif kind == b"zset":
                out[key] = admin.zrange(key, 0, -1, withscores=True)
            elif kind == b"set":
                out[key] = admin.smembers(key)
            elif kind == b"stream":
                out[key] = admin.xlen(key)
            else:
                out[key] = admin.get(key)
        return out
    finally:
        admin.close()


async def test_client_role_submits_follows_cancels_and_reads_outputs(roles: Roles) -> None:
    worker = WorkerQueue(roles.settings("supervisor"))
    with Client(roles.settings("client")) as client:
        try:
            job = client.submit(BODY, service="a1111", idempotency_key="order-1")
            assert client.status(job.id).position == 0
            assert [s.id for s in client.jobs("queued")] == [job.id]
            assert client.stats().total("queued") == 1
            a1111 = client.stats().service("a1111")
            assert a1111 is not None and [t.tenant for t in a1111.tenants] == ["default"]
            assert client.tenant_weights() == {}  # weights are readable, not writable
            claimed = (await worker.try_claim(["a1111"], "gpu-host", 0)).job
            assert claimed is not None
            await worker.renew(claimed, 0.5, "step 2/4")
            await worker.set_preview(claimed, PNG.data, "image/png")  # the supervisor writes
            preview = client.preview(job.id)  # the client reads
            assert preview is not None and preview.data == PNG.data
            await worker.complete(claimed, [PNG])
            result = await asyncio.to_thread(job.wait, 5.0)
            assert [o.data for o in result.outputs] == [PNG.data]

            queued = client.submit(BODY, service="a1111")
            assert queued.cancel() == "cancelled"
            assert client.status(queued.id).state is JobState.CANCELLED

            running = client.submit(BODY, service="a1111")
            claimed = (await worker.try_claim(["a1111"], "gpu-host", 0)).job
            assert claimed is not None and claimed.id == running.id
            assert running.cancel() == "cancelling"
            assert await worker.renew(claimed) is True  # the GPU sees the cancel
            await worker.ack_cancel(claimed)
            assert client.status(running.id).state is JobState.CANCELLED
        finally:
            await worker.aclose()


async def _claimed_by_supervisor(roles: Roles, client: Client) -> Any:
    """A job claimed by the supervisor role; the client role then tries to finish it."""
    client.submit(BODY, service="a1111")
    worker = WorkerQueue(roles.settings("supervisor"))
    try:
        claimed = (await worker.try_claim(["a1111"], "gpu-host", 0)).job
    finally:
        await worker.aclose()
    assert claimed is not None
    return claimed


WorkerAction = Callable[[WorkerQueue, Any], Awaitable[Any]]
WORKER_ACTIONS: dict[str, WorkerAction] = {
    "claim": lambda q, job: q.try_claim(["a1111"], "rogue", 0),
    "renew": lambda q, job: q.renew(job, 0.9, "forged"),
    "complete": lambda q, job: q.complete(job, [PNG]),
    "fail": lambda q, job: q.fail(job, FaultKind.INFRA, JobError("Forged", "by a client")),
    "ack_cancel": lambda q, job: q.ack_cancel(job),
    "reap": lambda q, job: q.reap("rogue"),
    "publish": lambda q, job: q.store.publish_host("rogue", {"host": "rogue"}, []),
}


@pytest.mark.parametrize("action", list(WORKER_ACTIONS))
async def test_client_role_cannot_do_the_work_of_a_supervisor(roles: Roles, action: str) -> None:
    with Client(roles.settings("client")) as client:
        job = await _claimed_by_supervisor(roles, client)
        client.submit(BODY, service="a1111")  # something a rogue claim could take
        before = snapshot(roles)
        rogue = WorkerQueue(roles.settings("client"))
        try:
            with pytest.raises(PermissionDenied) as caught:
                await WORKER_ACTIONS[action](rogue, job)
        finally:
            await rogue.aclose()
        assert snapshot(roles) == before, "a refused script changed nothing"
    message = str(caught.value)
    assert roles.users["client"] in message and roles.namespace in message
    assert roles.passwords["client"] not in message


ClientAction = Callable[[Client, str], Any]
STEERING: dict[str, ClientAction] = {
    "pause": lambda c, job_id: c.pause("a1111"),
    "resume": lambda c, job_id: c.resume("a1111"),
    "drain": lambda c, job_id: c.drain("gpu-host"),
    "undrain": lambda c, job_id: c.undrain("gpu-host"),
    "retry": lambda c, job_id: c.retry(job_id),
    "send_control": lambda c, job_id: c.send_control("gpu-host", {"type": "fault"}),
    "tenant_weight": lambda c, job_id: c.set_tenant_weight("acme", 5),
}


@pytest.mark.parametrize("action", list(STEERING))
async def test_client_role_cannot_steer_the_fleet(roles: Roles, action: str) -> None:
    with Client(roles.settings("operator")) as operator, Client(roles.settings("client")) as c:
        failed = c.submit(BODY, service="a1111", max_attempts=1)
        worker = WorkerQueue(roles.settings("supervisor"))
        try:
            claimed = (await worker.try_claim(["a1111"], "gpu-host", 0)).job
            assert claimed is not None
            await worker.fail(claimed, FaultKind.FINAL, JobError("Bad", "no"))
        finally:
            await worker.aclose()
        operator.drain("gpu-host") if action == "undrain" else None
        operator.pause("a1111") if action == "resume" else None
        before = snapshot(roles)
        with pytest.raises(PermissionDenied):
            STEERING[action](c, failed.id)
        assert snapshot(roles) == before, "a refused script changed nothing"


def test_client_role_reads_who_paused_and_drained(roles: Roles) -> None:
    with Client(roles.settings("operator")) as operator, Client(roles.settings("client")) as c:
        operator.pause("a1111", by="cli:ana@ops-1")
        operator.drain("gpu-host", by="tui:bo@ops-2")
        marks = ["paused:a1111", "drained:gpu-host"]
        assert c.changed_by(marks) == {
            "paused:a1111": "cli:ana@ops-1",
            "drained:gpu-host": "tui:bo@ops-2",
        }


async def test_supervisor_role_runs_jobs_but_cannot_submit_or_command(roles: Roles) -> None:
    with Client(roles.settings("client")) as client:
        first, second = (client.submit(BODY, service="a1111") for _ in range(2))
        cancelled = client.submit(BODY, service="a1111")
    worker = WorkerQueue(roles.settings("supervisor"))
    blocking = AsyncStore(roles.settings("supervisor"))
    try:
        drained, paused = await worker.gate("gpu-host", 0)
        assert (drained, paused) == (False, set())
        await worker.store.publish_host("gpu-host", {"host": "gpu-host"}, [{"index": 0}])
        assert await worker.store.read_control("gpu-host", "0-0", None) == []
        await worker.store.command("time")
        job = (await worker.claim(["a1111"], "gpu-host", 0, 1.0, blocking=blocking)).job
        assert job is not None and job.id == first.id
        assert await worker.renew(job, 0.5, "half") is False
        await worker.complete(job, [PNG])
        job = (await worker.try_claim(["a1111"], "gpu-host", 0)).job
        assert job is not None and job.id == second.id
        assert await worker.fail(job, FaultKind.JOB, JobError("Oops", "once")) == "retrying"
        job = (await worker.try_claim(["a1111"], "gpu-host", 0)).job
        assert job is not None and job.id == cancelled.id
        with Client(roles.settings("client")) as client:
            client.cancel(cancelled.id)
        await worker.ack_cancel(job)
        assert (await worker.reap("reaper-1")).ran
        assert await blocking.wait_for_work(["a1111"], 0.05) in (True, False)
        with Client(roles.settings("supervisor")) as rogue:
            with pytest.raises(PermissionDenied):
                rogue.submit(BODY, service="a1111")
            with pytest.raises(PermissionDenied):
                rogue.send_control("other-host", {"type": "fault", "gpu": 0, "spec": "xid=79"})
    finally:
        await worker.aclose()
        await blocking.aclose()


async def test_operator_role_steers_the_fleet(roles: Roles) -> None:
    with Client(roles.settings("operator")) as operator:
        job = operator.submit(BODY, service="a1111")
        other = operator.submit(BODY, service="a1111")
        assert operator.bump(other.id, 10) == 0
        assert operator.pause("a1111") and operator.resume("a1111")
        assert operator.drain("gpu-host:0") and operator.undrain("gpu-host:0")
        operator.send_control("gpu-host", {"type": "fault", "gpu": 0, "spec": "xid=79"})
        assert operator.cancel(job.id) == "cancelled"
        assert operator.retry(job.id) == 1
        assert operator.stats().total("queued") == 2
        operator.set_tenant_weight("acme", 2)
        assert operator.tenant_weights() == {"acme": 2.0}
        assert len(operator.jobs("queued")) == 2
        assert operator.fleet().hosts == ()
        # What the dashboard reads besides the client API: a job's workflow.
        assert operator.store.command("hget", operator.store.keys.job(job.id), "workflow")


def test_roles_are_confined_to_their_namespace(roles: Roles) -> None:
    with Client(roles.settings("operator", namespace="someone-else")) as stranger:
        with pytest.raises(PermissionDenied, match="someone-else"):
            stranger.submit(BODY, service="a1111")
        with pytest.raises(PermissionDenied):
            stranger.stats()


@pytest.mark.parametrize("role", ["client", "supervisor", "operator"])
@pytest.mark.parametrize(
    "command",
    [("FLUSHALL",), ("KEYS", "*"), ("SCAN", "0"), ("CONFIG", "GET", "*"), ("ACL", "LIST"),
     ("SCRIPT", "FLUSH"), ("SCRIPT", "DEBUG", "YES"), ("CONFIG", "SET", "maxmemory", "1"),
     ("INFO",),
     ("SHUTDOWN",), ("MONITOR",), ("CLIENT", "LIST"), ("PUBLISH", "x", "y"),
     ("FUNCTION", "FLUSH"), ("RANDOMKEY",), ("DBSIZE",), ("GET", "{other}:seq")],
    ids=lambda c: " ".join(c),
)  # fmt: skip
def test_no_role_runs_server_wide_or_foreign_commands(
    roles: Roles, role: str, command: tuple[str, ...]
) -> None:
    r = redis.Redis.from_url(roles.url(role))
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            r.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        r.close()


async def test_a_real_supervisor_runs_under_its_role(
    roles: Roles, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole supervisor (claims, renewals, heartbeats, reaper, control stream) needs no
    more than the supervisor role; the client role submits and waits."""
    group = await serve_comfyui("127.0.0.1", 0, 1)
    url = f"http://127.0.0.1:{group[0].port}"
    config = SupervisorConfig(
        settings=roles.settings("supervisor"),
        host_id="acl-node",
        backends=(BackendSpec("comfyui", url),),
        simulate_gpus=1,
        publish_interval_s=0.2,
        reap_interval_s=0.2,
    )
    supervisor = Supervisor(config)
    task = asyncio.create_task(supervisor.run(), name="acl-supervisor")
    try:
        await asyncio.wait_for(supervisor.ready.wait(), 30)
        with Client(roles.settings("client")) as client:
            job = client.submit(fake_work_workflow(0.1, 2, seed=7))
            result = await asyncio.to_thread(job.wait, 30.0)
            assert result.outputs
        with Client(roles.settings("operator")) as operator:
            assert operator.drain("acl-node")
            assert [h.host for h in operator.fleet().hosts] == ["acl-node"]
    finally:
        supervisor.request_stop()
        supervisor.request_stop()
        await asyncio.wait_for(task, 60)
        await group.aclose()
    assert task.result() == 0
    refused = [r.getMessage() for r in caplog.records if "not allowed" in r.getMessage()]
    assert refused == []


def test_acl_example_is_what_the_generator_prints_and_redis_loads_it(tmp_path: Path) -> None:
    acl_rules = load_acl_rules()
    example = (ROOT / "docs" / "acl.example").read_text()
    passwords = {role: f"{role}-password" for role in acl_rules.ROLE_NAMES}
    users = {role: f"fleetq-{role}" for role in acl_rules.ROLE_NAMES}
    printed = acl_rules.render("fleetq", users, passwords, "aclfile")
    filled = example
    for role, password in passwords.items():
        filled = filled.replace(f"#<sha256 of the {role} password>",
                                acl_rules.password_hash(password))  # fmt: skip
    rules = [line for line in filled.splitlines() if line.startswith("user ")]
    assert rules == [line for line in printed.splitlines() if line.startswith("user ")]
    aclfile = tmp_path / "users.acl"
    aclfile.write_text("\n".join([*rules, "user default on nopass ~* &* +@all"]) + "\n")
    with RedisServer(extra_args=("--aclfile", str(aclfile))) as server:
        r = redis.Redis(port=server.port, username="fleetq-client", password="client-password")
        try:
            assert r.ping()  # authenticated as fleetq-client
            with pytest.raises(redis.exceptions.NoPermissionError):
                r.acl_whoami()
        finally:
            r.close()
    unfilled = tmp_path / "unfilled.acl"
    unfilled.write_text(example)
    with pytest.raises(FleetqError, match="exited at start"):
        RedisServer(extra_args=("--aclfile", str(unfilled))).start()
