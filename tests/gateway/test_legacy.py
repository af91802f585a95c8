"""The replaced FastAPI service's endpoints keep their shapes, as a user of the old API sees them.

``OldApi`` is written the way such a user wrote their client: plain HTTP calls, JSON in and out,
no fleetq import.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import aiohttp

from fleetq.model import FaultKind, JobError, Output
from fleetq.worker import WorkerQueue

SUBMIT_KEYS = {"id", "status", "created_at", "position"}
STATUS_KEYS = {
    "id", "status", "created_at", "started_at", "completed_at", "position", "result", "error",
}  # fmt: skip
STATS_KEYS = {"queued", "priority_queue", "standard_queue", "processing", "completed", "failed"}


class OldApi:
    """A client of the old service: requests-like calls returning parsed JSON."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def submit(self, workflow: Any, service: str = "comfyui", priority: int = 0) -> Any:
        body = {"workflow": workflow, "service": service, "priority": priority}
        async with self.session.post(self.base + "/submit", json=body) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def status(self, job_id: str) -> Any:
        async with self.session.get(f"{self.base}/status/{job_id}") as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def stats(self) -> Any:
        async with self.session.get(self.base + "/stats") as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def download(self, url: str) -> tuple[bytes, str]:
        async with self.session.get(url) as r:
            assert r.status == 200, await r.text()
            return await r.read(), r.headers["Content-Type"]


async def old_api(gw: Any) -> tuple[OldApi, aiohttp.ClientSession]:
    session = aiohttp.ClientSession()
    return OldApi(session, str(gw.make_url("")).rstrip("/")), session


def assert_iso_utc(value: Any) -> datetime:
    assert isinstance(value, str)
    parsed = datetime.fromisoformat(value)
    offset = parsed.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    assert abs((datetime.now(timezone.utc) - parsed).total_seconds()) < 60
    return parsed


async def test_submit_answers_the_old_shape(gw: Any, graph: dict[str, Any]) -> None:
    api, session = await old_api(gw)
    async with session:
        first = await api.submit(graph, "comfyui", 0)
        second = await api.submit(graph, "comfyui", 0)
    assert set(first) == SUBMIT_KEYS
    assert isinstance(first["id"], str) and first["status"] == "queued"
    assert_iso_utc(first["created_at"])
    assert (first["position"], second["position"]) == (0, 1)


async def test_submit_defaults_service_and_priority_and_ignores_extra_fields(
    gw: Any, graph: dict[str, Any]
) -> None:
    async with gw.post("/submit", json={"workflow": graph, "client": "old-ui"}) as r:
        assert r.status == 200
        job_id = (await r.json())["id"]
    async with gw.get(f"/v1/jobs/{job_id}") as r:
        job = await r.json()
    assert (job["service"], job["priority"]) == ("comfyui", 0)


async def test_status_through_a_job_s_life(
    gw: Any, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    api, session = await old_api(gw)
    async with session:
        job_id = (await api.submit(graph))["id"]
        queued = await api.status(job_id)
        assert set(queued) == STATUS_KEYS
        assert queued["status"] == "queued" and queued["position"] == 0
        assert queued["started_at"] is None and queued["completed_at"] is None
        assert queued["result"] is None and queued["error"] is None

        claimed = (await worker.try_claim(["comfyui"], "gpu-box", 0)).job
        assert claimed is not None
        running = await api.status(job_id)
        assert running["status"] == "processing" and running["position"] is None
        assert_iso_utc(running["started_at"])

        await worker.complete(
            claimed,
            [Output("a.png", "image/png", b"\x89PNG-a"), Output("b.txt", "text/plain", b"bee")],
        )
        done = await api.status(job_id)
        assert set(done) == STATUS_KEYS
        assert done["status"] == "completed"
        assert assert_iso_utc(done["completed_at"]) >= assert_iso_utc(done["started_at"])
        assert [set(o) for o in done["result"]] == [
            {"index", "filename", "content_type", "size", "url"}
        ] * 2
        assert [(o["filename"], o["content_type"], o["size"]) for o in done["result"]] == [
            ("a.png", "image/png", 6),
            ("b.txt", "text/plain", 3),
        ]
        data, content_type = await api.download(done["result"][0]["url"])
        assert (data, content_type) == (b"\x89PNG-a", "image/png")


async def test_status_of_a_failed_and_a_cancelled_job(
    gw: Any, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    api, session = await old_api(gw)
    async with session:
        failing = (await api.submit(graph))["id"]
        cancelled = (await api.submit(graph))["id"]
        claimed = (await worker.try_claim(["comfyui"], "gpu-box", 0)).job
        assert claimed is not None and claimed.id == failing
        await worker.fail(claimed, FaultKind.FINAL, JobError("OOM", "out of memory", node="3"))
        async with gw.post(f"/v1/jobs/{cancelled}/cancel") as r:
            assert r.status == 200
        failed = await api.status(failing)
        gone = await api.status(cancelled)
    assert failed["status"] == "failed" and failed["result"] is None
    assert failed["error"] == "OOM: out of memory (node 3)"
    assert gone["status"] == "cancelled" and gone["error"] is None
    assert_iso_utc(gone["completed_at"])


async def test_stats_keeps_the_old_keys_and_counts_priority_bands(
    gw: Any, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    api, session = await old_api(gw)
    async with session:
        for priority in (5, 1, 0, -3, 0):
            await api.submit(graph, "comfyui", priority)
        await api.submit({"prompt": "a cat", "steps": 4}, "a1111", 2)
        claimed = (await worker.try_claim(["comfyui"], "gpu-box", 0)).job
        assert claimed is not None and claimed.priority == 5
        stats = await api.stats()
    assert set(stats) >= STATS_KEYS
    assert all(type(stats[k]) is int for k in STATS_KEYS)
    assert (stats["queued"], stats["priority_queue"], stats["standard_queue"]) == (5, 2, 3)
    assert (stats["processing"], stats["completed"], stats["failed"]) == (1, 0, 0)
    comfy = stats["services"]["comfyui"]
    assert (comfy["priority_queue"], comfy["standard_queue"], comfy["processing"]) == (1, 3, 1)
    assert stats["services"]["a1111"]["priority_queue"] == 1
    assert isinstance(stats["oldest_wait_s"], float)
    assert stats["paused"] == [] and stats["drained"] == []


async def test_worker_endpoints_are_gone(gw: Any, expect_error: Any) -> None:
    for method, path in (
        ("GET", "/next-job"),
        ("POST", "/next-job"),
        ("POST", "/complete-job/abc"),
    ):
        async with gw.request(method, path, json={"result": "x"}) as r:
            error = await expect_error(r, 410)
        assert error["type"] == "Gone"
        assert "fleetq supervisor" in error["message"]
