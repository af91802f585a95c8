"""Server-sent events: one job's progress to its end, and the resumable fleet event stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fleetq.gateway.state import GATEWAY
from fleetq.model import Output
from fleetq.worker import WorkerQueue

Event = dict[str, Any]


async def next_event(response: Any, timeout_s: float = 5.0) -> Event | None:
    """Read one event (``id``, ``event``, ``data`` parsed); None at the end of the stream.
    Comment lines (keep-alives) are skipped."""
    event: Event = {}
    while True:
        line = await asyncio.wait_for(response.content.readline(), timeout_s)
        if not line:
            return None
        text = line.decode().rstrip("\n")
        if text == "":
            if event:
                return event
            continue
        if text.startswith(":"):
            continue
        name, _, value = text.partition(": ")
        event[name] = json.loads(value) if name == "data" else value


async def submit(gw: Any, graph: dict[str, Any], **fields: Any) -> str:
    async with gw.post("/v1/jobs", json={"workflow": graph, **fields}) as r:
        assert r.status == 201
        job_id: str = (await r.json())["id"]
        return job_id


async def test_job_stream_follows_a_job_to_its_end(
    gw: Any, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    job_id = await submit(gw, graph)
    async with gw.get(f"/v1/jobs/{job_id}/events") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/event-stream"
        first = await next_event(r)
        assert first is not None and first["event"] == "status"
        assert first["data"]["job"]["state"] == "queued"

        claimed = (await worker.try_claim(["comfyui"], "box", 1)).job
        assert claimed is not None
        await worker.renew(claimed, 0.5, "step 10/20")
        await worker.complete(claimed, [Output("a.png", "image/png", b"png")])

        events = []
        while (event := await next_event(r)) is not None:
            events.append(event)
    assert [e["event"] for e in events] == ["claimed", "progress", "completed"]
    assert all(e["id"] for e in events)
    assert events[0]["data"]["host"] == "box" and events[0]["data"]["gpu"] == "1"
    assert events[1]["data"]["progress"] == 0.5
    assert events[1]["data"]["text"] == "step 10/20"
    final = events[2]["data"]["job"]
    assert final["state"] == "completed" and final["outputs"][0]["filename"] == "a.png"

    # Resuming after the progress event replays only what came after it.
    async with gw.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": events[1]["id"]}) as r:
        assert (await next_event(r))["event"] == "status"  # type: ignore[index]
        assert (await next_event(r))["event"] == "completed"  # type: ignore[index]


async def test_job_stream_of_a_finished_job_ends_at_once(gw: Any, graph: dict[str, Any]) -> None:
    job_id = await submit(gw, graph)
    async with gw.post(f"/v1/jobs/{job_id}/cancel") as r:
        assert r.status == 200
    async with gw.get(f"/v1/jobs/{job_id}/events") as r:
        kinds = []
        while (event := await next_event(r)) is not None:
            kinds.append(event["event"])
    assert kinds == ["status", "cancelled"]


async def test_fleet_stream_resumes_after_last_event_id(gw: Any, graph: dict[str, Any]) -> None:
    async with gw.get("/v1/events") as r:
        assert r.status == 200
        first_id = await submit(gw, graph)
        second_id = await submit(gw, graph, priority=3)
        one = await next_event(r)
        two = await next_event(r)
    assert one is not None and two is not None
    assert (one["event"], one["data"]["job"], one["data"]["service"]) == (
        "submitted", first_id, "comfyui",
    )  # fmt: skip
    assert (two["data"]["job"], two["data"]["priority"]) == (second_id, "3")
    assert one["data"]["at"].endswith("+00:00")

    async with gw.get("/v1/events", headers={"Last-Event-ID": one["id"]}) as r:
        again = await next_event(r)
    assert again is not None and again["id"] == two["id"]
    async with gw.get("/v1/events", params={"last_event_id": "0"}) as r:
        assert (await next_event(r))["id"] == one["id"]  # type: ignore[index]


async def test_fleet_stream_filters_by_service(gw: Any, graph: dict[str, Any]) -> None:
    async with gw.get("/v1/events", params={"service": "a1111"}) as r:
        await submit(gw, graph)
        a1111 = await submit(gw, {"prompt": "a cat"}, service="a1111")
        event = await next_event(r)
    assert event is not None and event["data"]["job"] == a1111


async def test_bad_resume_id_is_400(gw: Any, expect_error: Any) -> None:
    async with gw.get("/v1/events", headers={"Last-Event-ID": "yesterday"}) as r:
        await expect_error(r, 400)
    async with gw.get("/v1/events", params={"service": "nope"}) as r:
        await expect_error(r, 400)


async def test_shutdown_ends_open_streams(gw: Any, graph: dict[str, Any]) -> None:
    job_id = await submit(gw, graph)
    async with gw.get("/v1/events") as fleet, gw.get(f"/v1/jobs/{job_id}/events") as job:
        assert (await next_event(job))["event"] == "status"  # type: ignore[index]
        gw.app[GATEWAY].close_streams()  # what the server's on_shutdown does
        assert await next_event(fleet, timeout_s=3) is None
        assert await next_event(job, timeout_s=3) is None


async def test_head_on_a_stream_is_refused(gw: Any) -> None:
    # A HEAD would otherwise hold a Redis connection until shutdown, sending nothing.
    async with gw.head("/v1/events") as r:
        assert r.status == 405
