"""The fake ComfyUI's model lists, node set and model load time, against the running server."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fleetq.requirements import derive, meets
from supervisor.backends.http import Answer, HttpClient
from supervisor.capabilities import read_comfyui_capabilities
from supervisor.sim.comfyui import ComfyUIOptions, FakeComfyUI
from supervisor.sim.comfyui.workflows import checkpoint_work_workflow

ComfyFactory = Callable[..., Awaitable[FakeComfyUI]]

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = ROOT / "tests" / "fakes" / "captures"
WAIT_S = 10.0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as session:
        yield session


def sdxl(checkpoint: str = "sd_xl_base_1.0.safetensors", seed: int = 1) -> dict[str, Any]:
    """The example text-to-image graph, 2 sampler steps, with ``checkpoint`` and ``seed``."""
    graph: dict[str, Any] = json.loads(
        (ROOT / "examples" / "comfyui_sdxl_txt2img.json").read_text()
    )
    graph["4"]["inputs"]["ckpt_name"] = checkpoint
    graph["3"]["inputs"].update(seed=seed, steps=2)
    graph["5"]["inputs"].update(width=64, height=64)
    return graph


def with_lora(graph: dict[str, Any], lora: str) -> dict[str, Any]:
    graph = json.loads(json.dumps(graph))
    graph["10"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "model": ["4", 0],
            "clip": ["4", 1],
            "lora_name": lora,
            "strength_model": 0.8,
            "strength_clip": 0.8,
        },
    }
    graph["3"]["inputs"]["model"] = ["10", 0]
    graph["6"]["inputs"]["clip"] = ["10", 1]
    return graph


async def post(http: aiohttp.ClientSession, comfy: FakeComfyUI, body: Any) -> tuple[int, Any]:
    async with http.post(f"{comfy.url}/prompt", json=body) as response:
        return response.status, await response.json()


async def run(http: aiohttp.ClientSession, comfy: FakeComfyUI, graph: dict[str, Any]) -> float:
    """Run ``graph`` to its end (``executing{node: null}``); the seconds it took; asserts it
    succeeded."""
    client_id = uuid.uuid4().hex
    async with http.ws_connect(comfy.ws_url(client_id)) as ws:
        await ws.receive_json(timeout=WAIT_S)  # the first status
        started = time.monotonic()
        status, body = await post(http, comfy, {"prompt": graph, "client_id": client_id})
        assert status == 200, body
        prompt_id = body["prompt_id"]
        while True:
            message = await ws.receive_json(timeout=WAIT_S)
            data = message.get("data", {})
            if message["type"] == "executing" and data.get("node", "x") is None:
                assert data["prompt_id"] == prompt_id
                break
        elapsed = time.monotonic() - started
    async with http.get(f"{comfy.url}/history/{prompt_id}") as response:
        history = await response.json()
    assert history[prompt_id]["status"]["status_str"] == "success", history
    return elapsed


# -- model lists and validation ------------------------------------------------------------------


async def test_a_checkpoint_the_instance_lacks_fails_like_comfyui(
    comfy_factory: ComfyFactory, http: aiohttp.ClientSession
) -> None:
    """Same body shape as the recorded ``value_not_in_list`` answer of a real ComfyUI."""
    comfy = await comfy_factory(checkpoints=("sd15.safetensors",))
    status, body = await post(http, comfy, {"prompt": sdxl()})
    recorded = json.loads((CAPTURES / "post_prompt_invalid_bad_combo_value.json").read_text())
    assert status == recorded["status"] == 400
    assert body["error"] == recorded["body_json"]["error"]
    [(node_id, node_error)] = body["node_errors"].items()
    [(_, recorded_error)] = recorded["body_json"]["node_errors"].items()
    assert node_id == "4"
    assert set(node_error) == set(recorded_error)
    assert node_error["class_type"] == "CheckpointLoaderSimple"
    assert node_error["dependent_outputs"] == ["9"]
    [error] = node_error["errors"]
    assert set(error) == set(recorded_error["errors"][0])
    assert set(error["extra_info"]) == set(recorded_error["errors"][0]["extra_info"])
    assert error["type"] == "value_not_in_list"
    assert error["message"] == "Value not in list"
    assert error["details"] == "ckpt_name: 'sd_xl_base_1.0.safetensors' not in ['sd15.safetensors']"
    assert error["extra_info"]["input_config"][0] == ["sd15.safetensors"]
    assert error["extra_info"]["received_value"] == "sd_xl_base_1.0.safetensors"


async def test_models_per_folder_reach_loaders_models_route_and_capabilities(
    comfy_factory: ComfyFactory, http: aiohttp.ClientSession
) -> None:
    comfy = await comfy_factory(
        models={
            "checkpoints": ["sd_xl_base_1.0.safetensors"],
            "loras": ["detail.safetensors"],
            "vae": ["sdxl_vae.safetensors"],
            "diffusion_models": ["flux1-dev.safetensors"],
        },
        sampler_step_s=0.001,
    )
    async with http.get(f"{comfy.url}/models/loras") as response:
        assert await response.json() == ["detail.safetensors"]
    async with http.get(f"{comfy.url}/object_info/VAELoader") as response:
        info = await response.json()
    assert info["VAELoader"]["input"]["required"]["vae_name"] == [
        ["sdxl_vae.safetensors", "pixel_space"]
    ]

    client = HttpClient(comfy.url, http, Answer)
    caps = await read_comfyui_capabilities(client)
    assert caps.models["loras"] == {"detail.safetensors"}
    assert caps.models["diffusion_models"] == {"flux1-dev.safetensors"}

    good, bad = with_lora(sdxl(), "detail.safetensors"), with_lora(sdxl(), "film.safetensors")
    assert meets(derive("comfyui", good), caps) is None
    assert meets(derive("comfyui", bad), caps) == "needs LoRA film.safetensors"
    await run(http, comfy, good)
    status, body = await post(http, comfy, {"prompt": bad})
    assert status == 400
    assert body["node_errors"]["10"]["errors"][0]["details"] == (
        "lora_name: 'film.safetensors' not in ['detail.safetensors']"
    )

    comfy.configure(models={"loras": ["detail.safetensors", "film.safetensors"]})
    assert meets(derive("comfyui", bad), await read_comfyui_capabilities(client)) == (
        "needs checkpoint sd_xl_base_1.0.safetensors"
    )  # the new lists replaced the old ones: the checkpoint went with them


async def test_the_node_set_limits_what_validates(
    comfy_factory: ComfyFactory, http: aiohttp.ClientSession
) -> None:
    """A class outside the node set is refused like an unknown class on a real server; a
    custom node stand-in is listed, validates and runs."""
    comfy = await comfy_factory(
        nodes=("EmptyImage", "SaveImage"), custom_nodes=("IPAdapterAdvanced",)
    )
    async with http.get(f"{comfy.url}/object_info") as response:
        assert set(await response.json()) == {"EmptyImage", "SaveImage", "IPAdapterAdvanced"}

    recorded = json.loads((CAPTURES / "post_prompt_invalid_unknown_class.json").read_text())
    graph = recorded["request"]["body"]["prompt"]
    graph["1"]["class_type"] = "ImageBlur"
    status, body = await post(http, comfy, {"prompt": graph})
    expected = json.loads(json.dumps(recorded["body_json"]).replace("NoSuchNode", "ImageBlur"))
    assert (status, body) == (recorded["status"], expected)

    empty = {"width": 8, "height": 8, "batch_size": 1, "color": 0}
    custom = {
        "1": {"class_type": "EmptyImage", "inputs": empty},
        "2": {"class_type": "IPAdapterAdvanced", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "c"}},
    }
    await run(http, comfy, custom)
    caps = await read_comfyui_capabilities(HttpClient(comfy.url, http, Answer))
    assert meets(derive("comfyui", custom), caps) is None


async def test_bad_model_and_node_options_are_refused(
    comfy_factory: ComfyFactory, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(ValueError, match="unknown model folder"):
        ComfyUIOptions(models={"lora": ["x"]})
    with pytest.raises(ValueError, match="unknown node class"):
        FakeComfyUI("127.0.0.1", 0, ComfyUIOptions(nodes=("NoSuchNode",)))
    with pytest.raises(ValueError, match="replace a built-in"):
        FakeComfyUI("127.0.0.1", 0, ComfyUIOptions(custom_nodes=("KSampler",)))
    comfy = await comfy_factory()
    async with http.post(f"{comfy.url}/fake/config", json={"nodes": ["Nope"]}) as response:
        assert response.status == 400
    assert comfy.options.nodes is None


# -- model load time -----------------------------------------------------------------------------


@pytest.mark.parametrize("caching", [True, False])
async def test_a_load_is_charged_at_first_use_and_after_another_model(
    comfy_factory: ComfyFactory, http: aiohttp.ClientSession, caching: bool
) -> None:
    load_s = 0.3
    comfy = await comfy_factory(
        checkpoints=("a.safetensors", "b.safetensors"),
        model_load_s=load_s,
        sampler_step_s=0.001,
        caching=caching,
    )
    assert (comfy.loaded_model, comfy.model_loads) == (None, 0)

    assert await run(http, comfy, sdxl("a.safetensors", seed=1)) >= load_s
    assert (comfy.loaded_model, comfy.model_loads) == ("a.safetensors", 1)

    await run(http, comfy, sdxl("a.safetensors", seed=2))  # warm: no load
    assert comfy.model_loads == 1

    assert await run(http, comfy, sdxl("b.safetensors", seed=3)) >= load_s
    assert (comfy.loaded_model, comfy.model_loads) == ("b.safetensors", 2)

    await run(http, comfy, sdxl("a.safetensors", seed=4))
    assert (comfy.loaded_model, comfy.model_loads) == ("a.safetensors", 3)
    async with http.get(f"{comfy.url}/fake/state") as response:
        state = await response.json()
    assert (state["loaded_model"], state["model_loads"]) == ("a.safetensors", 3)


def test_fake_work_with_a_checkpoint_needs_it() -> None:
    """The benchmark's and the demo's job shape: a loader feeding FakeWork's ``model``."""
    graph = checkpoint_work_workflow("b.safetensors", 0.01, seed=5)
    needs = derive("comfyui", graph)
    assert needs.models == (("checkpoints", ("b.safetensors",)),)
    assert "FakeWork" in needs.nodes


async def test_fake_work_fed_by_a_loader_charges_the_load(
    comfy_factory: ComfyFactory, http: aiohttp.ClientSession
) -> None:
    comfy = await comfy_factory(checkpoints=("a.safetensors", "b.safetensors"), model_load_s=0.3)
    assert await run(http, comfy, checkpoint_work_workflow("a.safetensors", 0.01)) >= 0.3
    await run(http, comfy, checkpoint_work_workflow("a.safetensors", 0.01, seed=1))
    assert (comfy.loaded_model, comfy.model_loads) == ("a.safetensors", 1)
    assert await run(http, comfy, checkpoint_work_workflow("b.safetensors", 0.01)) >= 0.3
    assert (comfy.loaded_model, comfy.model_loads) == ("b.safetensors", 2)
    status, body = await post(http, comfy, {"prompt": checkpoint_work_workflow("c.safetensors")})
    assert status == 400
    assert body["node_errors"]["4"]["errors"][0]["type"] == "value_not_in_list"


async def test_unloading_and_restarting_forget_the_loaded_model(
    comfy_factory: ComfyFactory, http: aiohttp.ClientSession
) -> None:
    comfy = await comfy_factory(checkpoints=("a.safetensors",), sampler_step_s=0.001, caching=False)
    await run(http, comfy, sdxl("a.safetensors"))
    async with http.post(f"{comfy.url}/free", json={"unload_models": True}) as response:
        assert response.status == 200
    assert comfy.loaded_model is None
    await run(http, comfy, sdxl("a.safetensors", seed=2))
    assert comfy.model_loads == 2

    await comfy.restart(delay_s=0)
    assert comfy.loaded_model is None
    await run(http, comfy, sdxl("a.safetensors", seed=3))
    assert (comfy.loaded_model, comfy.model_loads) == ("a.safetensors", 3)


# -- the command line ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_command_line_flags(http: aiohttp.ClientSession) -> None:
    port = _free_port()
    command = [
        sys.executable, "-m", "supervisor.sim.comfyui", "--port", str(port),
        "--node", "LoraLoader", "--node", "SaveImage", "--custom-node", "MyNode",
        "--model", "loras=a.safetensors", "--model", "loras=b.safetensors",
        "--model-load-seconds", "2.5", "--log-level", "WARNING",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        info = None
        deadline = time.monotonic() + WAIT_S
        while info is None:  # until the server listens (no event to await across processes)
            try:
                async with http.get(f"http://127.0.0.1:{port}/object_info") as response:
                    info = await response.json()
            except aiohttp.ClientConnectionError:
                assert process.poll() is None and time.monotonic() < deadline
                await asyncio.sleep(0.05)
        assert set(info) == {"LoraLoader", "SaveImage", "MyNode"}
        lora_choices = info["LoraLoader"]["input"]["required"]["lora_name"][0]
        assert lora_choices == ["a.safetensors", "b.safetensors"]
        async with http.get(f"http://127.0.0.1:{port}/fake/state") as response:
            assert (await response.json())["options"]["model_load_s"] == 2.5
    finally:
        process.terminate()
        process.wait(timeout=WAIT_S)
