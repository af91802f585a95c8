"""Submitting input files through the gateway: multipart parts or base64 in JSON; bad ones
are refused with a clear error and write nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from fleetq import Settings
from supervisor.sim.png import encode_solid_png

PNG = encode_solid_png(8, 8, (10, 20, 30))
MASK = encode_solid_png(8, 8, (255, 255, 255))
GRAPH = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
    "2": {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "red"}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}


def multipart(job: Any, files: dict[str, bytes], job_name: str = "job") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(job_name, json.dumps(job), content_type="application/json")
    for name, data in files.items():
        form.add_field("inputs", data, filename=name, content_type="image/png")
    return form


async def stored_inputs(raw_redis: aioredis.Redis, settings: Settings, job_id: str) -> Any:
    return await raw_redis.hgetall("{" + settings.namespace + "}:in:" + job_id)


async def test_multipart_submit_stores_the_files(
    gw: Any, raw_redis: aioredis.Redis, settings: Settings
) -> None:
    form = multipart({"workflow": GRAPH, "priority": 3}, {"photo.png": PNG, "mask.png": MASK})
    async with gw.post("/v1/jobs", data=form) as r:
        assert r.status == 201, await r.text()
        job = await r.json()
    assert job["priority"] == 3
    assert await stored_inputs(raw_redis, settings, job["id"]) == {
        b"photo.png": PNG,
        b"mask.png": MASK,
    }


async def test_json_submit_takes_base64_inputs(
    gw: Any, raw_redis: aioredis.Redis, settings: Settings
) -> None:
    body = {
        "workflow": {"prompt": "x", "init_images": ["photo.png"], "mask": "mask.png"},
        "service": "a1111",
        "inputs": {
            "photo.png": base64.b64encode(PNG).decode(),
            "mask.png": "data:image/png;base64," + base64.b64encode(MASK).decode(),
        },
    }
    async with gw.post("/v1/jobs", json=body) as r:
        assert r.status == 201, await r.text()
        job = await r.json()
    assert await stored_inputs(raw_redis, settings, job["id"]) == {
        b"photo.png": PNG,
        b"mask.png": MASK,
    }


async def test_bad_inputs_are_refused_and_write_nothing(
    make_gateway: Any, footprint: Any, expect_error: Any, settings: Settings
) -> None:
    gw = await make_gateway(settings_=settings.with_overrides(max_input_bytes=4096))
    b64 = base64.b64encode(PNG).decode()
    json_cases: list[tuple[Any, int, str]] = [
        ({"workflow": GRAPH, "inputs": {"photo.png": b64}}, 400, "'mask.png', which is not"),
        ({"workflow": GRAPH, "inputs": {"photo.png": "!!notbase64", "mask.png": b64}}, 400,
         "not valid base64"),
        ({"workflow": GRAPH, "inputs": ["photo.png"]}, 400, "inputs must be an object"),
        ({"workflow": GRAPH, "inputs": {"../photo.png": b64, "mask.png": b64}}, 400,
         "plain file name"),
        ({"workflow": GRAPH, "inputs": {"photo.png": b64, "mask.png": b64, "x.png": b64}}, 400,
         "'x.png' attached but not named"),
        ({"workflow": GRAPH, "inputs": {"photo.png": base64.b64encode(b"hello").decode(),
                                        "mask.png": b64}}, 400, "is not an image"),
        ({"workflow": GRAPH, "inputs": {"photo.png": base64.b64encode(PNG + bytes(5000)).decode(),
                                        "mask.png": b64}}, 413, "FLEETQ_MAX_INPUT_BYTES"),
    ]  # fmt: skip
    form_cases: list[tuple[aiohttp.FormData, int, str]] = [
        (multipart({"workflow": GRAPH}, {"photo.png": PNG}), 400, "not attached"),
        (multipart({"workflow": GRAPH}, {"photo.png": PNG, "mask.png": MASK}, "jobb"), 400,
         "unknown part 'jobb'"),
        (multipart({"workflow": GRAPH, "inputs": {}}, {}), 400, "as 'inputs' parts"),
        (multipart({"workflow": GRAPH}, {"a/photo.png": PNG, "mask.png": MASK}), 400,
         "input name 'a"),  # aiohttp sends the file name quoted: a%2Fphoto.png
        (multipart([1], {}), 400, "must be a JSON object"),
    ]  # fmt: skip
    before = await footprint.take()
    for body, status, message in json_cases:
        async with gw.post("/v1/jobs", json=body) as r:
            error = await expect_error(r, status)
        assert message in error["message"], error
    for form, status, message in form_cases:
        async with gw.post("/v1/jobs", data=form) as r:
            error = await expect_error(r, status)
        assert message in error["message"], error
    await footprint.assert_unchanged(before)


async def test_openapi_describes_both_forms(gw: Any) -> None:
    async with gw.get("/openapi.json") as r:
        spec = await r.json()
    content = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    schemas = spec["components"]["schemas"]
    assert schemas["Submit"]["properties"]["inputs"]["additionalProperties"]["format"] == "byte"
    assert schemas["SubmitMultipart"]["required"] == ["job"]


async def test_a_streamed_multipart_body_is_held_to_the_body_cap(
    make_gateway: Any, footprint: Any, expect_error: Any
) -> None:
    """Without a Content-Length the cap is counted while the parts are read."""
    gw = await make_gateway(max_body_bytes=4000)
    boundary = "fleetqtestboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="job"\r\n'
        "Content-Type: application/json\r\n\r\n"
        + json.dumps({"workflow": GRAPH})
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="inputs"; '
        'filename="photo.png"\r\nContent-Type: image/png\r\n\r\n'
    ).encode()

    async def chunks() -> Any:
        yield head
        for _ in range(10):
            yield bytes(1000)
        yield f"\r\n--{boundary}--\r\n".encode()

    before = await footprint.take()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with gw.post("/v1/jobs", data=chunks(), headers=headers) as r:
        error = await expect_error(r, 413)
    assert "body cap" in error["message"]
    await footprint.assert_unchanged(before)


async def test_broken_multipart_headers_are_a_400(
    gw: Any, footprint: Any, expect_error: Any
) -> None:
    boundary = "b0undary"
    raw = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="\x03\x17"\r\n\r\nx\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    before = await footprint.take()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with gw.post("/v1/jobs", data=raw, headers=headers) as r:
        error = await expect_error(r, 400)
    assert error["type"] == "MalformedMultipart"
    await footprint.assert_unchanged(before)
