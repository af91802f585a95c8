"""Fake ComfyUI: ``/view``, ``/upload/image`` and the information routes."""

from __future__ import annotations

import aiohttp
import pytest
from fakes_testkit import load_capture, png_chunks, png_pixels, small_workflow


async def run_small(http, comfy, connect, **kwargs) -> dict:
    socket = await connect(comfy, "v")
    body = {"prompt": small_workflow(**kwargs), "client_id": "v"}
    async with http.post(comfy.url + "/prompt", json=body) as response:
        prompt_id = (await response.json())["prompt_id"]
    messages = await socket.until_done(prompt_id)
    image: dict = next(m for m in messages if m["type"] == "executed")["data"]["output"]["images"][
        0
    ]
    return image


@pytest.mark.parametrize("prefix", ["", "/api"])
async def test_view_serves_the_png_with_the_captured_headers(http, comfy, connect, prefix):
    captured = dict(load_capture("get_view_image.json")["headers"])
    image = await run_small(http, comfy, connect, color=0x112233, prefix="probe")
    query = {"filename": image["filename"], "subfolder": image["subfolder"], "type": "output"}
    async with http.get(comfy.url + prefix + "/view", params=query) as response:
        assert response.status == 200
        data = await response.read()
        headers = response.headers
    for name in ("Content-Disposition", "Content-Type", "Accept-Ranges"):
        assert headers[name] == captured[name]
    assert "Etag" in headers and "Last-Modified" in headers
    assert int(headers["Content-Length"]) == len(data)
    width, height, raw = png_pixels(data)
    assert (width, height) == (64, 64)
    assert raw[:4] == b"\x00\x11\x22\x33"
    text = dict(payload.split(b"\x00", 1) for kind, payload in png_chunks(data) if kind == b"tEXt")
    assert b"EmptyImage" in text[b"prompt"]


@pytest.mark.parametrize(
    ("capture", "query"),
    [
        ("get_view_missing_file.json", {"filename": "nope.png", "type": "output"}),
        ("get_view_traversal.json", {"filename": "../etc/passwd", "type": "output"}),
        ("get_view_bad_type.json", {"filename": "probe_00001_.png", "type": "bogus"}),
    ],
)
async def test_view_errors_match_the_captures(http, comfy, capture, query):
    expected = load_capture(capture)
    async with http.get(comfy.url + "/view", params=query) as response:
        assert response.status == expected["status"]
        assert await response.read() == b""


async def test_view_subfolder_escape_is_forbidden(http, comfy):
    query = {"filename": "x.png", "subfolder": "../../", "type": "output"}
    async with http.get(comfy.url + "/view", params=query) as response:
        assert response.status == 403


async def test_view_subfolder_annotation_and_channel(http, comfy, connect):
    image = await run_small(http, comfy, connect, prefix="jobs/job-1/img")
    assert image == {"filename": "img_00001_.png", "subfolder": "jobs/job-1", "type": "output"}
    query = {"filename": "img_00001_.png [output]", "subfolder": "jobs/job-1", "type": "temp"}
    async with http.get(comfy.url + "/view", params=query) as response:
        assert response.status == 200
    query = {**query, "channel": "a"}
    async with http.get(comfy.url + "/view", params=query) as response:
        assert response.headers["Content-Type"] == "image/png"
        width, height, raw = png_pixels(await response.read())
    assert (width, height, raw[1:4]) == (64, 64, b"\xff\xff\xff")


async def test_upload_image_reuses_identical_files_and_renames_others(http, comfy):
    async def upload(data: bytes, **fields: str) -> tuple[int, object]:
        form = aiohttp.FormData()
        form.add_field("image", data, filename="probe.png", content_type="image/png")
        for key, value in fields.items():
            form.add_field(key, value)
        async with http.post(comfy.url + "/upload/image", data=form) as response:
            body = await response.json() if response.status == 200 else None
            return response.status, body

    assert await upload(b"one", subfolder="probe") == (
        200,
        {"name": "probe.png", "subfolder": "probe", "type": "input"},
    )
    assert (await upload(b"one", subfolder="probe"))[1] == {
        "name": "probe.png",
        "subfolder": "probe",
        "type": "input",
    }
    renamed = await upload(b"two", subfolder="probe")
    assert renamed[1] == {"name": "probe (1).png", "subfolder": "probe", "type": "input"}
    assert (await upload(b"three", subfolder="probe", overwrite="true"))[1] == {
        "name": "probe.png",
        "subfolder": "probe",
        "type": "input",
    }
    assert (comfy.files.base / "input" / "probe" / "probe.png").read_bytes() == b"three"
    assert (await upload(b"x", subfolder="../../outside"))[0] == 400
    async with http.post(comfy.url + "/upload/image", data=aiohttp.FormData({"a": "b"})) as r:
        assert r.status == 400


async def test_information_routes(http, comfy):
    features = load_capture("get_features.json")["body_json"]
    stats = load_capture("get_system_stats.json")["body_json"]
    for prefix in ("", "/api"):
        async with http.get(comfy.url + prefix + "/features") as response:
            assert await response.json() == features
        async with http.get(comfy.url + prefix + "/system_stats") as response:
            body = await response.json()
        assert list(body) == list(stats)
        assert list(body["system"]) == list(stats["system"])
        assert list(body["devices"][0]) == list(stats["devices"][0])
        assert body["system"]["comfyui_version"] == "0.3.64"
        assert body["devices"][0]["type"] == "cuda"
    async with http.get(comfy.url + "/nonexistent_route") as response:
        assert response.status == 404 and await response.read() == b""
    async with http.get(comfy.url + "/embeddings") as response:
        assert await response.json() == []
    async with http.get(comfy.url + "/models") as response:
        assert "checkpoints" in await response.json()
    async with http.get(comfy.url + "/") as response:
        assert response.status == 200 and response.content_type == "text/html"


async def test_free_clears_the_cache_when_idle(http, comfy, connect):
    await run_small(http, comfy, connect)
    assert comfy.state()["cache_entries"] == 2
    body = {"unload_models": True, "free_memory": True}
    async with http.post(comfy.url + "/free", json=body) as response:
        assert response.status == 200 and await response.read() == b""
    assert comfy.state()["cache_entries"] == 0
