"""Fake ComfyUI: ``LoadImage`` / ``LoadImageMask`` read uploads as ComfyUI does, and a missing
file fails validation exactly as there (``VALIDATE_INPUTS``: ``custom_validation_failed``)."""

from __future__ import annotations

from typing import Any

import aiohttp

from supervisor.sim.comfyui import FakeComfyUI
from supervisor.sim.png import encode_solid_png


def graph(name: str, loader: str = "LoadImage") -> dict[str, Any]:
    if loader == "LoadImageMask":
        return {
            "1": {"class_type": loader, "inputs": {"image": name, "channel": "alpha"}},
            "3": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
        }
    return {
        "1": {"class_type": loader, "inputs": {"image": name}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


async def post_prompt(http: aiohttp.ClientSession, comfy: FakeComfyUI, prompt: Any) -> Any:
    async with http.post(comfy.url + "/prompt", json={"prompt": prompt}) as response:
        return response.status, await response.json()


async def upload(http: aiohttp.ClientSession, comfy: FakeComfyUI, name: str, data: bytes,
                 **fields: str) -> Any:  # fmt: skip
    form = aiohttp.FormData(fields)
    form.add_field("image", data, filename=name)
    async with http.post(comfy.url + "/upload/image", data=form) as response:
        return response.status, await response.read()


async def test_a_missing_image_fails_validation_as_comfyui_does(http, comfy):
    for loader in ("LoadImage", "LoadImageMask"):
        status, body = await post_prompt(http, comfy, graph("nope.png", loader))
        assert status == 400
        assert body["error"]["type"] == "prompt_outputs_failed_validation"
        assert body["node_errors"]["1"] == {
            "errors": [
                {
                    "type": "custom_validation_failed",
                    "message": "Custom validation failed for node",
                    "details": "image - Invalid image file: nope.png",
                    "extra_info": {"input_name": "image"},
                }
            ],
            "dependent_outputs": ["2"],
            "class_type": loader,
        }


async def test_an_upload_in_a_subfolder_is_loadable_by_subfolder_path(http, comfy):
    status, _ = await upload(http, comfy, "p.png", encode_solid_png(4, 4, (1, 2, 3)),
                             subfolder="fleetq/job1", type="input")  # fmt: skip
    assert status == 200
    status, body = await post_prompt(http, comfy, graph("fleetq/job1/p.png"))
    assert status == 200, body
    # Only files at the top of input/ are listed (INPUT_TYPES), yet the list is not checked.
    async with http.get(comfy.url + "/object_info/LoadImage") as response:
        info = await response.json()
    assert info["LoadImage"]["input"]["required"]["image"] == [[], {"image_upload": True}]
    await upload(http, comfy, "top.png", encode_solid_png(4, 4, (1, 2, 3)))
    async with http.get(comfy.url + "/object_info/LoadImage") as response:
        info = await response.json()
    assert info["LoadImage"]["input"]["required"]["image"][0] == ["top.png"]


async def test_uploads_over_the_size_limit_are_refused_with_413(http, comfy):
    comfy.configure(max_upload_size=100)
    status, body = await upload(http, comfy, "big.png", b"\x89PNG" + b"\0" * 500)
    assert status == 413 and b"Maximum request body size 100 exceeded" in body
    assert not any((comfy.files.base / "input").iterdir())
