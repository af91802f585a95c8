"""Capabilities read from the backends: the recorded ComfyUI ``/object_info`` and the running
fake ComfyUI and A1111 servers, matched against requirements derived from real workflows."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fleetq.errors import InvalidArgument
from fleetq.requirements import derive, meets
from supervisor.backends.http import Answer, HttpClient, Unreachable
from supervisor.capabilities import (
    CapabilitiesUnreadable,
    comfyui_capabilities_from_object_info,
    parse_label,
    read_a1111_capabilities,
    read_capabilities,
    read_comfyui_capabilities,
)
from supervisor.sim.a1111 import FakeA1111
from supervisor.sim.comfyui import FakeComfyUI

ComfyFactory = Callable[..., Awaitable[FakeComfyUI]]
A1111Factory = Callable[..., Awaitable[FakeA1111]]

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).resolve().parent / "captures" / "object_info_loaders.json"


def _example(name: str) -> Any:
    return json.loads((ROOT / "examples" / name).read_text())


def _http(url: str, **headers: str) -> HttpClient[Answer]:
    return HttpClient(url, None, Answer, headers=headers or None)


# -- the recorded /object_info -------------------------------------------------------------------


def test_recorded_object_info_reads_as_nodes_and_empty_model_folders() -> None:
    """The recording server had no models: every folder is empty but configs (yaml files
    shipped with ComfyUI) and vae (``pixel_space``)."""
    recorded = json.loads(RECORDED.read_text())
    caps = comfyui_capabilities_from_object_info(recorded)
    assert caps.nodes == set(recorded)
    assert caps.models["vae"] == {"pixel_space"}
    assert "v1-inference.yaml" in caps.models["configs"]
    assert caps.models["checkpoints"] == frozenset()
    assert caps.models["upscale_models"] == frozenset()


def test_files_are_read_from_classic_and_v3_combo_inputs() -> None:
    """Classic nodes declare ``[[files], {}]``, V3 nodes ``["COMBO", {"options": [files]}]``;
    the recorded upscale prompt is met once its model is listed."""
    recorded = copy.deepcopy(json.loads(RECORDED.read_text()))
    recorded["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] = ["sd15.safetensors"]
    upscale = recorded["UpscaleModelLoader"]["input"]["required"]["model_name"]
    assert upscale[0] == "COMBO"
    upscale[1]["options"] = ["tiny_random_compact_x1.safetensors"]
    caps = comfyui_capabilities_from_object_info(recorded)
    assert caps.models["checkpoints"] == {"sd15.safetensors"}
    body = json.loads(
        (ROOT / "tests" / "backends" / "captures" / "post_prompt_upscale_progress.json").read_text()
    )
    needs = derive("comfyui", body["request"]["body"])
    assert meets(needs, caps) is None
    del recorded["ImageUpscaleWithModel"]
    assert meets(needs, comfyui_capabilities_from_object_info(recorded)) == (
        "needs node class ImageUpscaleWithModel"
    )


# -- the fake ComfyUI ----------------------------------------------------------------------------


async def test_fake_comfyui_capabilities_follow_its_checkpoints(
    comfy_factory: ComfyFactory,
) -> None:
    comfy = await comfy_factory(checkpoints=("sd15.safetensors",))
    http = _http(comfy.url)
    try:
        caps = await read_comfyui_capabilities(http)
        assert await read_capabilities("comfyui", http) == caps
        assert caps.nodes == set(comfy.classes())
        assert caps.models["checkpoints"] == {"sd15.safetensors"}
        needs = derive("comfyui", _example("comfyui_sdxl_txt2img.json"))
        assert meets(needs, caps) == "needs checkpoint sd_xl_base_1.0.safetensors"

        comfy.configure(checkpoints=("sd15.safetensors", "sd_xl_base_1.0.safetensors"))
        assert meets(needs, await read_comfyui_capabilities(http)) is None
    finally:
        await http.aclose()


async def test_unreachable_comfyui_raises_unreachable(comfy_factory: ComfyFactory) -> None:
    comfy = await comfy_factory()
    url = comfy.url
    await comfy.stop()
    http = _http(url)
    try:
        with pytest.raises(Unreachable):
            await read_comfyui_capabilities(http, timeout_s=2)
    finally:
        await http.aclose()


# -- the fake A1111 ------------------------------------------------------------------------------

SDXL = "sd_xl_base_1.0.safetensors [31e35c80fc]"


async def test_fake_a1111_capabilities(a1111_factory: A1111Factory) -> None:
    a1111 = await a1111_factory(
        models=(SDXL, "sub/juggernaut.safetensors [abcdef0123]"),
        loras=("detail_tweaker.safetensors",),
        scripts=("ControlNet",),
    )
    http = _http(a1111.url)
    try:
        caps = await read_a1111_capabilities(http)
        assert await read_capabilities("a1111", http) == caps
        with pytest.raises(ValueError, match="no capability reader"):
            await read_capabilities("swarmui", http)
    finally:
        await http.aclose()
    # Each checkpoint under every alias A1111 accepts in override_settings.
    assert {SDXL, "sd_xl_base_1.0.safetensors", "sd_xl_base_1.0", "31e35c80fc"} <= set(
        caps.models["checkpoints"]
    )
    assert caps.models["loras"] == {"detail_tweaker"}
    assert {"x/y/z plot", "sd upscale", "controlnet"} <= set(caps.models["scripts"])
    assert "Euler a" in caps.models["samplers"]

    assert meets(derive("a1111", _example("a1111_txt2img.json")), caps) is None
    body = {
        "prompt": "x <lora:detail_tweaker:0.5> <lora:film_grain:1>",
        "script_name": "X/Y/Z plot",
        "alwayson_scripts": {"ADetailer": {"args": []}},
        "override_settings": {"sd_model_checkpoint": "flux1-dev"},
    }
    assert meets(derive("a1111", body), caps) == (
        "needs checkpoint flux1-dev; needs LoRA film_grain; needs script adetailer"
    )


async def test_a1111_with_api_auth_needs_its_credentials(a1111_factory: A1111Factory) -> None:
    a1111 = await a1111_factory(api_auth="ops:secret")
    token = base64.b64encode(b"ops:secret").decode()
    with_auth, without = _http(a1111.url, Authorization=f"Basic {token}"), _http(a1111.url)
    try:
        caps = await read_a1111_capabilities(with_auth)
        assert caps.models["checkpoints"]
        with pytest.raises(CapabilitiesUnreadable, match="HTTP 401"):
            await read_a1111_capabilities(without)
    finally:
        await with_auth.aclose()
        await without.aclose()


async def test_a1111_without_the_lora_route_offers_no_lora() -> None:
    """The Lora extension can be disabled: ``/sdapi/v1/loras`` is then a 404."""
    from aiohttp import web

    async def sd_models(request: web.Request) -> web.Response:
        return web.json_response([{"title": SDXL, "model_name": "sd_xl_base_1.0"}])

    async def empty(request: web.Request) -> web.Response:
        return web.json_response([])

    async def scripts(request: web.Request) -> web.Response:
        return web.json_response({"txt2img": [], "img2img": []})

    app = web.Application()
    app.router.add_get("/sdapi/v1/sd-models", sd_models)
    app.router.add_get("/sdapi/v1/samplers", empty)
    app.router.add_get("/sdapi/v1/scripts", scripts)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    http = _http(f"http://127.0.0.1:{port}")
    try:
        caps = await read_a1111_capabilities(http)
        assert caps.models["loras"] == frozenset()
        assert SDXL in caps.models["checkpoints"]
    finally:
        await http.aclose()
        await runner.cleanup()


# -- labels ---------------------------------------------------------------------------------------


def test_operator_labels_parse_like_required_labels() -> None:
    assert parse_label("gpu=h100") == ("gpu", "h100")
    assert parse_label(" region = eu ") == ("region", "eu")
    with pytest.raises(InvalidArgument, match="key=value"):
        parse_label("gpu")
    with pytest.raises(InvalidArgument, match="label key"):
        parse_label("=h100")


async def test_fake_a1111_list_routes_answer_like_a1111(a1111_factory: A1111Factory) -> None:
    """Shapes as A1111 1.10 serves them (``extensions-builtin/Lora/scripts/lora_script.py``,
    ``modules/api/api.py get_scripts_list``)."""
    a1111 = await a1111_factory(loras=("add_detail.safetensors",))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{a1111.url}/sdapi/v1/loras") as response:
            assert response.status == 200
            assert await response.json() == [
                {
                    "name": "add_detail",
                    "alias": "add_detail",
                    "path": "/models/Lora/add_detail.safetensors",
                    "metadata": {},
                }
            ]
        async with session.get(f"{a1111.url}/sdapi/v1/scripts") as response:
            scripts = await response.json()
    assert set(scripts) == {"txt2img", "img2img"}
    assert all(name == name.lower() for name in scripts["txt2img"] + scripts["img2img"])
