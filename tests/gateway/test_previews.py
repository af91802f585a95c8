"""Live previews through the gateway: the job stream announces each one with a URL, and the
URL serves the latest image until the job stops running."""

from __future__ import annotations

from typing import Any

from fleetq.model import Output
from fleetq.worker import WorkerQueue
from supervisor.sim.png import encode_solid_png
from tests.gateway.test_streams import next_event, submit

PNG = encode_solid_png(16, 16, (9, 99, 199))


async def error_type(gw: Any, expect_error: Any, path: str, status: int) -> str:
    return str((await expect_error(await gw.get(path), status))["type"])


async def test_job_stream_announces_previews_and_their_url_serves_the_image(
    gw: Any, worker: WorkerQueue, graph: dict[str, Any], expect_error: Any
) -> None:
    job_id = await submit(gw, graph)
    assert (
        await error_type(gw, expect_error, f"/v1/jobs/{job_id}/preview", 404) == "PreviewNotFound"
    )
    async with gw.get(f"/v1/jobs/{job_id}/events") as stream:
        assert (await next_event(stream))["event"] == "status"  # type: ignore[index]
        claimed = (await worker.try_claim(["comfyui"], "box", 0)).job
        assert claimed is not None
        assert (await next_event(stream))["event"] == "claimed"  # type: ignore[index]
        await worker.set_preview(claimed, PNG, "image/png")
        event = await next_event(stream)
        assert event is not None and event["event"] == "preview"
        data = event["data"]
        assert data["content_type"] == "image/png" and data["size"] == len(PNG)
        assert data["url"].endswith(f"/v1/jobs/{job_id}/preview")
        assert "data" not in data  # the bytes are fetched, never streamed

        async with gw.get(f"/v1/jobs/{job_id}/preview") as r:
            assert r.status == 200
            assert await r.read() == PNG
            assert r.headers["Content-Type"] == "image/png"
            assert r.headers["Cache-Control"] == "no-store"
            assert r.headers["X-Content-Type-Options"] == "nosniff"

        await worker.complete(claimed, [Output("a.png", "image/png", b"png")])
        events = []
        while (ev := await next_event(stream)) is not None:
            events.append(ev)
    assert [e["event"] for e in events] == ["completed"]
    final = events[0]["data"]["job"]
    assert [o["filename"] for o in final["outputs"]] == ["a.png"]
    assert (
        await error_type(gw, expect_error, f"/v1/jobs/{job_id}/preview", 404) == "PreviewNotFound"
    )


async def test_preview_of_an_unknown_job_is_404(gw: Any, expect_error: Any) -> None:
    assert (
        await error_type(gw, expect_error, "/v1/jobs/0123456789abcdef/preview", 404)
        == "JobNotFound"
    )
    await expect_error(await gw.get("/v1/jobs/not-an-id/preview"), 400)


async def test_openapi_describes_the_preview_route(gw: Any) -> None:
    async with gw.get("/openapi.json") as r:
        spec = await r.json()
    route = spec["paths"]["/v1/jobs/{job_id}/preview"]["get"]
    assert "200" in route["responses"] and "404" in route["responses"]
    assert "preview" in spec["paths"]["/v1/jobs/{job_id}/events"]["get"]["description"]
