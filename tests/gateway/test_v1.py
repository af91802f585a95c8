"""fleetq's own API under /v1: jobs, admin actions, output files, the fleet, health."""

from __future__ import annotations

from typing import Any

from fleetq import Settings
from fleetq.model import FaultKind, JobError, Output
from fleetq.records import GpuRecord, HostRecord
from fleetq.store import AsyncStore
from fleetq.worker import WorkerQueue

JOB_KEYS = {
    "id", "service", "state", "priority", "position", "progress", "progress_text", "attempts",
    "max_attempts", "claims", "lost_leases", "host", "gpu", "error", "submitted_at",
    "enqueued_at", "started_at", "finished_at", "ready_at", "timeout_s", "cancel_requested",
    "metadata", "tenant", "outputs", "eta", "timeline", "requirements", "unschedulable",
}  # fmt: skip


async def submit(gw: Any, graph: dict[str, Any], **fields: Any) -> dict[str, Any]:
    async with gw.post("/v1/jobs", json={"workflow": graph, **fields}) as r:
        assert r.status in (200, 201), await r.text()
        body: dict[str, Any] = await r.json()
        return body


async def test_submit_with_options_and_idempotency(gw: Any, graph: dict[str, Any]) -> None:
    fields = {
        "priority": 7,
        "max_attempts": 2,
        "timeout_s": 60,
        "metadata": {"user": "ana"},
        "idempotency_key": "order-17",
    }
    async with gw.post("/v1/jobs", json={"workflow": graph, **fields}) as r:
        assert r.status == 201
        job = await r.json()
    assert set(job) == JOB_KEYS
    assert (job["state"], job["priority"], job["max_attempts"]) == ("queued", 7, 2)
    assert (job["timeout_s"], job["metadata"], job["position"]) == (60.0, {"user": "ana"}, 0)
    async with gw.post("/v1/jobs", json={"workflow": graph, **fields}) as r:
        assert r.status == 200
        assert (await r.json())["id"] == job["id"]


async def test_submit_with_a_tenant_and_per_tenant_stats(
    gw: Any, graph: dict[str, Any], expect_error: Any
) -> None:
    job = await submit(gw, graph, tenant="acme")
    assert job["tenant"] == "acme"
    assert (await submit(gw, graph, metadata={"tenant": "globex"}))["tenant"] == "globex"
    assert (await submit(gw, graph))["tenant"] == "default"
    async with gw.post("/v1/jobs", json={"workflow": graph, "tenant": "no spaces"}) as r:
        assert "tenant" in (await expect_error(r, 400))["message"]
    async with gw.get("/v1/stats") as r:
        tenants = (await r.json())["services"]["comfyui"]["tenants"]
    assert tenants == {
        "acme": {"queued": 1, "running": 0, "weight": 1.0},
        "default": {"queued": 1, "running": 0, "weight": 1.0},
        "globex": {"queued": 1, "running": 0, "weight": 1.0},
    }


async def test_submit_refuses_unknown_fields(
    gw: Any, graph: dict[str, Any], expect_error: Any
) -> None:
    async with gw.post("/v1/jobs", json={"workflow": graph, "priorty": 3}) as r:
        error = await expect_error(r, 400)
    assert "priorty" in error["message"]


async def test_get_and_list_jobs(gw: Any, graph: dict[str, Any], expect_error: Any) -> None:
    low = await submit(gw, graph, priority=-1)
    high = await submit(gw, graph, priority=3)
    await submit(gw, {"prompt": "a cat"}, service="a1111")
    async with gw.get(f"/v1/jobs/{low['id']}") as r:
        assert (await r.json())["position"] == 1
    async with gw.get("/v1/jobs", params={"service": "comfyui", "limit": "10"}) as r:
        assert [j["id"] for j in (await r.json())["jobs"]] == [high["id"], low["id"]]
    async with gw.get("/v1/jobs", params={"limit": "1"}) as r:
        assert len((await r.json())["jobs"]) == 1
    async with gw.get("/v1/jobs", params={"state": "completed"}) as r:
        assert (await r.json())["jobs"] == []
    for params in ({"state": "done"}, {"limit": "0"}, {"limit": "x"}, {"service": "nope"}):
        async with gw.get("/v1/jobs", params=params) as r:
            await expect_error(r, 400)


async def test_cancel_bump_retry(
    gw: Any, worker: WorkerQueue, graph: dict[str, Any], expect_error: Any
) -> None:
    first = await submit(gw, graph)
    second = await submit(gw, graph)
    async with gw.post(f"/v1/jobs/{second['id']}/bump", json={"priority": 9}) as r:
        assert await r.json() == {"id": second["id"], "priority": 9, "position": 0}
    async with gw.post(f"/v1/jobs/{second['id']}/bump", json={"priority": 5000}) as r:
        assert (await expect_error(r, 400))["type"] == "InvalidPriority"
    async with gw.post(f"/v1/jobs/{second['id']}/bump", json={}) as r:
        await expect_error(r, 400)

    async with gw.post(f"/v1/jobs/{first['id']}/cancel") as r:
        assert await r.json() == {"id": first["id"], "result": "cancelled"}
    async with gw.post(f"/v1/jobs/{first['id']}/cancel") as r:
        assert (await r.json())["result"] == "cancelled"  # cancelling twice is a no-op
    async with gw.post(f"/v1/jobs/{first['id']}/bump", json={"priority": 1}) as r:
        assert (await expect_error(r, 409))["type"] == "InvalidTransition"

    claimed = (await worker.try_claim(["comfyui"], "box", 0)).job
    assert claimed is not None and claimed.id == second["id"]
    async with gw.post(f"/v1/jobs/{second['id']}/retry") as r:
        await expect_error(r, 409)
    async with gw.post(f"/v1/jobs/{second['id']}/cancel") as r:
        assert (await r.json())["result"] == "cancelling"
    await worker.fail(claimed, FaultKind.FINAL, JobError("E", "boom"))

    async with gw.post(f"/v1/jobs/{first['id']}/retry") as r:
        assert await r.json() == {"id": first["id"], "position": 0}
    async with gw.post("/v1/jobs/0123456789abcdef/retry") as r:
        assert (await expect_error(r, 404))["type"] == "JobNotFound"


async def test_output_files(
    gw: Any, worker: WorkerQueue, graph: dict[str, Any], expect_error: Any
) -> None:
    job = await submit(gw, graph)
    async with gw.get(f"/v1/jobs/{job['id']}/outputs/0") as r:
        assert (await expect_error(r, 409))["type"] == "NotCompleted"
    claimed = (await worker.try_claim(["comfyui"], "box", 0)).job
    assert claimed is not None
    await worker.complete(
        claimed,
        [
            Output("ComfyUI_0001_.png", "image/png", b"png-bytes"),
            Output("../../etc/évil.html", "text/html", b"<script>"),
            Output("weird", "not a type\r\nX: y", b"w"),
        ],
    )
    async with gw.get(f"/v1/jobs/{job['id']}/outputs/0") as r:
        assert r.status == 200
        assert await r.read() == b"png-bytes"
        assert r.headers["Content-Type"] == "image/png"
        assert 'filename="ComfyUI_0001_.png"' in r.headers["Content-Disposition"]
    async with gw.get(f"/v1/jobs/{job['id']}/outputs/1") as r:
        disposition = r.headers["Content-Disposition"]
        assert disposition.startswith('attachment; filename="_vil.html"')
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    async with gw.get(f"/v1/jobs/{job['id']}/outputs/2") as r:
        assert r.headers["Content-Type"] == "application/octet-stream"
    async with gw.get(f"/v1/jobs/{job['id']}/outputs/3") as r:
        assert (await expect_error(r, 404))["type"] == "OutputNotFound"
    async with gw.get(f"/v1/jobs/{job['id']}/outputs/-1") as r:
        await expect_error(r, 400)
    async with gw.get(f"/v1/jobs/{job['id']}") as r:
        outputs = (await r.json())["outputs"]
    assert [o["url"].rsplit("/v1/", 1)[1] for o in outputs] == [
        f"jobs/{job['id']}/outputs/{i}" for i in range(3)
    ]


async def test_expired_outputs_are_gone(
    gw: Any, worker: WorkerQueue, graph: dict[str, Any], raw_redis: Any, expect_error: Any
) -> None:
    job = await submit(gw, graph)
    claimed = (await worker.try_claim(["comfyui"], "box", 0)).job
    assert claimed is not None
    await worker.complete(claimed, [Output("a.png", "image/png", b"x")])
    await raw_redis.delete(worker.keys.outputs(job["id"]))
    async with gw.get(f"/v1/jobs/{job['id']}/outputs/0") as r:
        assert (await expect_error(r, 410))["type"] == "OutputsExpired"


async def test_pause_resume_and_stats(gw: Any, expect_error: Any) -> None:
    async with gw.post("/v1/services/comfyui/pause") as r:
        assert await r.json() == {"service": "comfyui", "paused": True, "changed": True}
    async with gw.post("/v1/services/comfyui/pause") as r:
        assert (await r.json())["changed"] is False
    async with gw.get("/v1/stats") as r:
        stats = await r.json()
    assert stats["paused"] == ["comfyui"] and stats["services"]["comfyui"]["paused"] is True
    async with gw.post("/v1/services/comfyui/resume") as r:
        assert await r.json() == {"service": "comfyui", "paused": False, "changed": True}
    async with gw.post("/v1/services/nope/pause") as r:
        assert (await expect_error(r, 400))["type"] == "UnknownService"


async def test_fleet_and_drain(gw: Any, settings: Settings, expect_error: Any) -> None:
    store = AsyncStore(settings)
    try:
        await store.publish_host(
            "box-1",
            {"host": "box-1", "gpus": 1},
            [{"index": 0, "name": "RTX 4090", "health": "healthy", "readings": {}}],
        )
    finally:
        await store.aclose()
    async with gw.post("/v1/fleet/box-1:0/drain") as r:
        assert await r.json() == {"target": "box-1:0", "drained": True, "changed": True}
    async with gw.get("/v1/fleet") as r:
        fleet = await r.json()
    assert fleet["gpu_count"] == 1
    (host,) = fleet["hosts"]
    assert (host["host"], host["online"], host["gpus"][0]["name"]) == ("box-1", True, "RTX 4090")
    async with gw.get("/stats") as r:
        assert (await r.json())["drained"] == ["box-1:0"]
    async with gw.post("/v1/fleet/box-1:0/undrain") as r:
        assert (await r.json())["changed"] is True
    async with gw.post("/v1/fleet/box-1:x/drain") as r:
        await expect_error(r, 400)


async def test_health_and_openapi(gw: Any) -> None:
    async with gw.get("/healthz") as r:
        assert await r.json() == {"status": "ok"}
    async with gw.get("/readyz") as r:
        assert await r.json() == {"status": "ready"}
    async with gw.get("/openapi.json") as r:
        doc = await r.json()
    assert doc["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    served = set()
    for route in gw.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "*"):
            continue
        served.add((route.method, path))
    # Every route is documented, and every documented operation is served.
    assert served == documented - {("GET", "/next-job"), ("POST", "/next-job"),
                                   ("POST", "/complete-job/{job_id}")}  # fmt: skip


async def test_a_queued_job_read_alone_has_an_eta(
    gw: Any, graph: dict[str, Any], worker: WorkerQueue
) -> None:
    job = await submit(gw, graph)
    assert job["eta"] is None  # no GPU can run it yet
    await worker.publish_host("box", HostRecord(host="box"), [GpuRecord(0, services=("comfyui",))])
    async with gw.get(f"/v1/jobs/{job['id']}") as r:
        eta = (await r.json())["eta"]
    assert set(eta) == {"start_at", "finish_at", "estimated_at", "ahead", "gpus", "busy_gpus",
                        "run_s", "guess"}  # fmt: skip
    assert eta["guess"] is True  # no run on record
    assert (eta["ahead"], eta["gpus"], eta["busy_gpus"]) == (0, 1, 0)
    assert eta["start_at"] == eta["estimated_at"]  # an idle GPU takes it at once
