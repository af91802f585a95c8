"""Fake ComfyUI: ``POST /prompt`` error bodies replayed from the captures, field by field."""

from __future__ import annotations

from typing import Any

import pytest
from fakes_testkit import load_capture, work_workflow

REJECTED = [
    "post_prompt_invalid_bad_combo_value.json",
    "post_prompt_invalid_empty_prompt.json",
    "post_prompt_invalid_link_to_missing_node.json",
    "post_prompt_invalid_link_type_mismatch.json",
    "post_prompt_invalid_missing_class_type.json",
    "post_prompt_invalid_missing_required_input.json",
    "post_prompt_invalid_no_output_node.json",
    "post_prompt_invalid_no_prompt_key.json",
    "post_prompt_invalid_unknown_class.json",
    "post_prompt_invalid_value_out_of_range.json",
    "post_prompt_invalid_wrong_value_type.json",
    "post_prompt_body_is_list.json",
]


def assert_same(actual: Any, expected: Any, path: str = "body") -> None:
    """Equal, except that a traceback only has to be a non-empty list of strings (the real
    one names ComfyUI's files and lines)."""
    if path.endswith(".traceback"):
        assert isinstance(actual, list) and actual, path
        assert all(isinstance(line, str) for line in actual), path
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for index, (left, right) in enumerate(zip(actual, expected, strict=True)):
            assert_same(left, right, f"{path}[{index}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("name", REJECTED)
async def test_rejections_match_the_capture(http, comfy, name):
    capture = load_capture(name)
    async with http.post(comfy.url + "/prompt", json=capture["request"]["body"]) as response:
        assert response.status == capture["status"] == 400
        assert response.content_type == "application/json"
        body = await response.json()
    assert_same(body, capture["body_json"])
    assert comfy.state()["pending"] == [] and comfy.state()["running"] == []


@pytest.mark.parametrize(
    "name", ["post_prompt_malformed_json.json", "post_prompt_prompt_is_list.json"]
)
async def test_crashes_are_bare_500_pages(http, comfy, name):
    capture = load_capture(name)
    request = capture["request"]["body"]
    kwargs = {"data": request.encode()} if isinstance(request, str) else {"json": request}
    async with http.post(comfy.url + "/prompt", **kwargs) as response:
        assert response.status == capture["status"] == 500
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await response.text() == capture["body_text"]


async def test_one_good_one_bad_output_is_accepted_with_node_errors(http, comfy):
    capture = load_capture("post_prompt_invalid_one_good_one_bad_output.json")
    async with http.post(comfy.url + "/prompt", json=capture["request"]["body"]) as response:
        assert response.status == 200
        body = await response.json()
    assert list(body) == list(capture["body_json"]) == ["prompt_id", "number", "node_errors"]
    assert_same(body["node_errors"], capture["body_json"]["node_errors"])


def txt2img_workflow(ckpt_name: str, steps: int = 3) -> dict[str, Any]:
    """ComfyUI's default text-to-image graph."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt_name}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler",
              "inputs": {"model": ["4", 0], "seed": 1, "steps": steps, "cfg": 8.0,
                         "sampler_name": "euler", "scheduler": "normal", "positive": ["6", 0],
                         "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "t2i"}},
    }  # fmt: skip


async def test_missing_model_is_value_not_in_list(http, comfy):
    workflow = txt2img_workflow("v1-5-pruned-emaonly.safetensors")
    async with http.post(comfy.url + "/prompt", json={"prompt": workflow}) as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"] == {
        "4": {
            "errors": [
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": "ckpt_name: 'v1-5-pruned-emaonly.safetensors' not in []",
                    "extra_info": {
                        "input_name": "ckpt_name",
                        "input_config": [
                            [],
                            {"tooltip": "The name of the checkpoint (model) to load."},
                        ],
                        "received_value": "v1-5-pruned-emaonly.safetensors",
                    },
                }
            ],
            "dependent_outputs": ["9"],
            "class_type": "CheckpointLoaderSimple",
        }
    }


async def test_default_graph_runs_once_the_model_exists(http, comfy_factory, connect):
    comfy = await comfy_factory(checkpoints=("sd15.safetensors",), sampler_step_s=0.001)
    socket = await connect(comfy, "c")
    body = {"prompt": txt2img_workflow("sd15.safetensors", steps=4), "client_id": "c"}
    async with http.post(comfy.url + "/prompt", json=body) as response:
        assert response.status == 200
        prompt_id = (await response.json())["prompt_id"]
    messages = await socket.until_done(prompt_id)
    executing = [m["data"]["node"] for m in messages if m["type"] == "executing"]
    # ComfyUI's ExecutionList order for this graph (depth-first stack, ux_friendly_pick_node).
    assert executing == ["4", "5", "7", "6", "3", "8", "9", None]
    assert [m["data"]["value"] for m in messages if m["type"] == "progress"] == [1, 2, 3, 4]
    async with http.get(comfy.url + "/models/checkpoints") as response:
        assert await response.json() == ["sd15.safetensors"]


async def test_checkpoint_list_is_a_runtime_option(http, comfy):
    info_url = comfy.url + "/object_info/CheckpointLoaderSimple"
    async with http.get(info_url) as response:
        info = await response.json()
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == []
    comfy.configure(checkpoints=["sd15.safetensors"])
    async with http.get(info_url) as response:
        info = await response.json()
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == [
        "sd15.safetensors"
    ]


async def test_value_not_in_list_on_fake_work_outcome(http, comfy):
    workflow = {**work_workflow(), "4": {"class_type": "FakeWork", "inputs": {
        "seconds": 0, "steps": 0, "outcome": "bogus"}}, "5": {"class_type": "SaveImage",
        "inputs": {"images": ["4", 0], "filename_prefix": "x"}}}  # fmt: skip
    async with http.post(comfy.url + "/prompt", json={"prompt": workflow}) as response:
        assert response.status == 200  # output 3 is fine, output 5 is dropped
        body = await response.json()
    (error,) = body["node_errors"]["4"]["errors"]
    assert error["type"] == "value_not_in_list"
    assert error["details"] == "outcome: 'bogus' not in ['ok', 'error', 'hang']"
    assert body["node_errors"]["4"]["dependent_outputs"] == ["5"]


async def test_widget_values_are_coerced_in_the_queued_prompt(http, comfy, connect):
    workflow = {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": "64", "height": 32.9, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": 5}},
    }  # fmt: skip
    socket = await connect(comfy, "c")
    async with http.post(
        comfy.url + "/prompt", json={"prompt": workflow, "client_id": "c"}
    ) as response:
        prompt_id = (await response.json())["prompt_id"]
    await socket.until_done(prompt_id)
    async with http.get(f"{comfy.url}/history/{prompt_id}") as response:
        entry = (await response.json())[prompt_id]
    assert entry["prompt"][2]["1"]["inputs"]["width"] == 64
    assert entry["prompt"][2]["1"]["inputs"]["height"] == 32
    assert entry["outputs"]["2"]["images"][0]["filename"] == "5_00001_.png"


@pytest.mark.parametrize("node_class", ["EmptyImage", "SaveImage", "ImageBlur"])
async def test_object_info_matches_the_capture(http, comfy, node_class):
    capture = load_capture(f"get_object_info_{node_class}.json")
    for prefix in ("", "/api"):
        async with http.get(f"{comfy.url}{prefix}/object_info/{node_class}") as response:
            assert response.status == 200
            assert_same(await response.json(), capture["body_json"])


async def test_object_info_lists_every_class_and_unknown_is_empty(http, comfy):
    unknown = load_capture("get_object_info_unknown.json")["body_json"]
    async with http.get(comfy.url + "/object_info/NoSuchNode") as response:
        assert await response.json() == unknown == {}
    async with http.get(comfy.url + "/object_info") as response:
        info = await response.json()
    assert {
        "EmptyImage", "SaveImage", "PreviewImage", "ImageBlur", "CheckpointLoaderSimple",
        "FakeWork", "EmptyLatentImage", "ImageScale",
    } <= set(info)  # fmt: skip
    fake_work = info["FakeWork"]
    assert fake_work["input_order"] == {
        "required": ["seconds", "steps", "outcome"],
        "optional": ["image", "seed", "error_message", "previews", "model"],
    }
    assert fake_work["input"]["required"]["outcome"][0] == ["ok", "error", "hang"]
    assert fake_work["output"] == ["IMAGE"] and fake_work["output_node"] is False
