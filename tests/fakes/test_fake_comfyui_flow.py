"""Fake ComfyUI: message order and history of successful, cached and failed prompts."""

from __future__ import annotations

import aiohttp
from fakes_testkit import (
    is_done,
    load_capture,
    normalize,
    of_type,
    small_workflow,
    types,
    work_workflow,
    ws_messages,
)

from supervisor.sim.comfyui import FakeComfyUI


async def post(http: aiohttp.ClientSession, server: FakeComfyUI, body: object) -> dict:
    async with http.post(server.url + "/prompt", json=body) as response:
        assert response.status == 200, await response.text()
        result: dict = await response.json()
        return result


async def test_replays_the_small_capture_message_for_message(http, comfy, connect):
    """EmptyImage -> SaveImage and its identical resubmission, against ws_small_success."""
    recorded = ws_messages(load_capture("ws_small_success.jsonl"))
    request = load_capture("post_prompt_success.json")["request"]["body"]
    client_id = request["client_id"]
    socket = await connect(comfy, client_id)

    first = await post(http, comfy, request)
    assert first["number"] == 0 and first["node_errors"] == {}
    run1 = await socket.until_done(first["prompt_id"])
    second = await post(http, comfy, request)
    run2 = await socket.until_done(second["prompt_id"])

    assert normalize(run1 + run2) == normalize(recorded[1:])


async def test_history_entry_matches_the_capture(http, comfy, connect):
    captured = load_capture("get_history_id_after_completion.json")["body_json"]
    request = load_capture("post_prompt_success.json")["request"]["body"]
    socket = await connect(comfy, request["client_id"])
    prompt_id = (await post(http, comfy, request))["prompt_id"]
    await socket.until_done(prompt_id)

    async with http.get(f"{comfy.url}/history/{prompt_id}") as response:
        history = await response.json()
    (expected,) = captured.values()
    entry = history[prompt_id]
    assert list(entry) == ["prompt", "outputs", "status", "meta"]
    assert entry["prompt"][0] == 0 and entry["prompt"][2:] == expected["prompt"][2:]
    assert entry["outputs"] == expected["outputs"]
    assert entry["meta"] == expected["meta"]
    assert normalize([entry["status"]]) == normalize([expected["status"]])


async def test_api_prefix_serves_the_same_flow(http, comfy, connect):
    socket = await connect(comfy, "api-client", prefix="/api")
    body = {"prompt": small_workflow(0x010203), "client_id": "api-client"}
    async with http.post(comfy.url + "/api/prompt", json=body) as response:
        prompt_id = (await response.json())["prompt_id"]
    messages = await socket.until_done(prompt_id)
    assert "execution_success" in types(messages)
    async with http.get(f"{comfy.url}/api/history/{prompt_id}") as response:
        assert prompt_id in await response.json()


async def test_fake_work_progress_frames_and_order(http, comfy, connect):
    socket = await connect(comfy, "c1")
    prompt_id = (await post(http, comfy, {"prompt": work_workflow(0.05, 5), "client_id": "c1"}))[
        "prompt_id"
    ]
    messages = await socket.until_done(prompt_id)

    # Drop progress_state (sent at every change) to see the skeleton of the run.
    skeleton = [
        (m["type"], m["data"].get("node"), m["data"].get("value"))
        for m in messages
        if m["type"] != "progress_state"
    ]
    assert skeleton == [
        ("status", None, None),
        ("status", None, None),
        ("execution_start", None, None),
        ("execution_cached", None, None),
        ("executing", "1", None),
        ("executing", "2", None),
        *[("progress", "2", value) for value in range(1, 6)],
        ("executing", "3", None),
        ("executed", "3", None),
        ("execution_success", None, None),
        ("status", None, None),
        ("executing", None, None),
    ]
    progress = [m["data"] for m in messages if m["type"] == "progress"]
    assert progress[0] == {"value": 1, "max": 5, "prompt_id": prompt_id, "node": "2"}
    # Each progress frame is preceded by a progress_state carrying the same value.
    for index, message in enumerate(messages):
        if message["type"] == "progress":
            state = messages[index - 1]
            assert state["type"] == "progress_state"
            node = state["data"]["nodes"]["2"]
            assert (node["value"], node["max"], node["state"]) == (
                message["data"]["value"],
                5,
                "running",
            )
    final_state = [m for m in messages if m["type"] == "progress_state"][-1]["data"]["nodes"]
    assert {n: (s["value"], s["max"], s["state"]) for n, s in final_state.items()} == {
        "1": (1.0, 1.0, "finished"),
        "2": (5, 5, "finished"),
        "3": (1.0, 1.0, "finished"),
    }
    executed = next(m for m in messages if m["type"] == "executed")["data"]
    assert executed["output"] == {
        "images": [{"filename": "work_00001_.png", "subfolder": "", "type": "output"}]
    }


async def test_identical_resubmission_is_served_from_cache(http, comfy, connect):
    socket = await connect(comfy, "c1")
    workflow = work_workflow(0.01, prefix="cached")
    first = (await post(http, comfy, {"prompt": workflow, "client_id": "c1"}))["prompt_id"]
    await socket.until_done(first)
    second = (await post(http, comfy, {"prompt": workflow, "client_id": "c1"}))["prompt_id"]
    messages = await socket.until_done(second)

    assert types(messages) == [
        "status",
        "status",
        "execution_start",
        "execution_cached",
        "executed",
        "progress_state",
        "execution_success",
        "status",
        "executing",
    ]
    assert messages[3]["data"]["nodes"] == ["1", "2", "3"]
    assert messages[4]["data"]["output"]["images"][0]["filename"] == "cached_00001_.png"
    assert messages[5]["data"]["nodes"]["3"]["value"] == 1
    assert not (comfy.files.base / "output" / "cached_00002_.png").exists()

    async with http.get(f"{comfy.url}/history/{second}") as response:
        entry = (await response.json())[second]
    assert entry["outputs"]["3"]["images"][0]["filename"] == "cached_00001_.png"


async def test_changed_input_reuses_the_cached_prefix(http, comfy, connect):
    socket = await connect(comfy, "c1")
    first = await post(http, comfy, {"prompt": work_workflow(seed=1), "client_id": "c1"})
    await socket.until_done(first["prompt_id"])
    second = await post(http, comfy, {"prompt": work_workflow(seed=2), "client_id": "c1"})
    messages = await socket.until_done(second["prompt_id"])
    cached = next(m for m in messages if m["type"] == "execution_cached")
    assert cached["data"]["nodes"] == ["1"]
    assert [m["data"]["node"] for m in messages if m["type"] == "executing"] == ["2", "3", None]


async def test_caching_switch_off_executes_everything(http, comfy_factory, connect):
    comfy = await comfy_factory(caching=False)
    socket = await connect(comfy, "c1")
    for _ in range(2):
        prompt_id = (await post(http, comfy, {"prompt": work_workflow(), "client_id": "c1"}))[
            "prompt_id"
        ]
        messages = await socket.until_done(prompt_id)
        assert next(m for m in messages if m["type"] == "execution_cached")["data"]["nodes"] == []
    assert (comfy.files.base / "output" / "work_00002_.png").exists()


async def test_runtime_error_is_reported_like_the_capture(http, comfy, connect):
    recorded = next(
        m
        for m in ws_messages(load_capture("ws_runtime_error.jsonl"))
        if m["type"] == "execution_error"
    )
    socket = await connect(comfy, "c1")
    workflow = work_workflow(0.01, outcome="error", error_message="out of fake memory")
    prompt_id = (await post(http, comfy, {"prompt": workflow, "client_id": "c1"}))["prompt_id"]
    messages = await socket.until_done(prompt_id)

    assert types(messages)[-3:] == ["execution_error", "status", "executing"]
    assert "execution_success" not in types(messages)
    error = messages[-3]["data"]
    assert list(error) == list(recorded["data"])
    assert error["node_id"] == "2" and error["node_type"] == "FakeWork"
    assert error["executed"] == ["1"]
    assert error["exception_message"] == "out of fake memory\n"
    assert error["exception_type"] == "RuntimeError"
    assert error["traceback"] and all(isinstance(line, str) for line in error["traceback"])
    assert error["current_inputs"]["seconds"] == [0.01]
    assert error["current_inputs"]["image"] == ["tensor(shape=[1, 48, 64, 3])"]
    assert sorted(error["current_outputs"]) == ["1", "2", "3"]

    captured = load_capture("get_history_runtime_error.json")["body_json"]
    (expected,) = captured.values()
    async with http.get(f"{comfy.url}/history/{prompt_id}") as response:
        entry = (await response.json())[prompt_id]
    assert entry["outputs"] == expected["outputs"] == {}
    assert entry["meta"] == expected["meta"] == {}
    assert (entry["status"]["status_str"], entry["status"]["completed"]) == ("error", False)
    assert [event for event, _ in entry["status"]["messages"]] == [
        event for event, _ in expected["status"]["messages"]
    ]
    assert entry["status"]["messages"][-1][1] == error


async def test_failed_node_is_not_cached(http, comfy, connect):
    socket = await connect(comfy, "c1")
    workflow = work_workflow(outcome="error")
    for _ in range(2):
        prompt_id = (await post(http, comfy, {"prompt": workflow, "client_id": "c1"}))["prompt_id"]
        messages = await socket.until_done(prompt_id)
        assert "execution_error" in types(messages)
    assert next(m for m in messages if m["type"] == "execution_cached")["data"]["nodes"] == ["1"]


async def test_save_image_outside_the_output_folder_is_a_runtime_error(http, comfy, connect):
    socket = await connect(comfy, "c1")
    workflow = small_workflow(prefix="../../escape/x")
    prompt_id = (await post(http, comfy, {"prompt": workflow, "client_id": "c1"}))["prompt_id"]
    messages = await socket.until_done(prompt_id)
    error = next(m for m in messages if m["type"] == "execution_error")["data"]
    assert error["exception_type"] == "Exception"
    assert "Saving image outside the output folder is not allowed." in error["exception_message"]


async def test_history_race_switch_delays_the_history_write(http, comfy_factory, connect):
    comfy = await comfy_factory(history_delay_s=0.3)
    socket = await connect(comfy, "c1")
    prompt_id = (await post(http, comfy, {"prompt": work_workflow(), "client_id": "c1"}))[
        "prompt_id"
    ]
    await socket.until(lambda m: of_type(m, "execution_success"))
    async with http.get(f"{comfy.url}/history/{prompt_id}") as response:
        assert await response.json() == {}
    async with http.get(f"{comfy.url}/queue") as response:
        assert [item[1] for item in (await response.json())["queue_running"]] == [prompt_id]
    rest = await socket.until_done(prompt_id)
    assert types(rest) == ["status", "executing"]
    async with http.get(f"{comfy.url}/history/{prompt_id}") as response:
        assert prompt_id in await response.json()


async def test_history_is_ready_when_executing_null_arrives(http, comfy, connect):
    socket = await connect(comfy, "c1")
    for seed in range(5):
        body = {"prompt": work_workflow(seed=seed), "client_id": "c1"}
        prompt_id = (await post(http, comfy, body))["prompt_id"]
        await socket.until(lambda m, pid=prompt_id: is_done(m, pid))
        async with http.get(f"{comfy.url}/history/{prompt_id}") as response:
            assert prompt_id in await response.json()


async def test_one_good_and_one_bad_output_runs_only_the_good_one(http, comfy, connect):
    capture = load_capture("post_prompt_invalid_one_good_one_bad_output.json")
    socket = await connect(comfy, "c1")
    body = {**capture["request"]["body"], "client_id": "c1"}
    async with http.post(comfy.url + "/prompt", json=body) as response:
        assert response.status == 200
        result = await response.json()
    assert result["node_errors"] == capture["body_json"]["node_errors"]
    messages = await socket.until_done(result["prompt_id"])
    assert [m["data"]["node"] for m in messages if m["type"] == "executing"] == ["1", "2", None]
    async with http.get(f"{comfy.url}/history/{result['prompt_id']}") as response:
        entry = (await response.json())[result["prompt_id"]]
    assert entry["prompt"][4] == ["2"]
    assert entry["status"]["status_str"] == "success"
    assert list(entry["outputs"]) == ["2"]


async def test_preview_frames_use_the_negotiated_format(http, comfy, connect):
    legacy = await connect(comfy, "legacy")
    modern = await connect(comfy, "modern")
    await modern.ws.send_json(
        {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
    )
    reply = await modern.next()
    assert reply == {
        "type": "feature_flags",
        "data": {"supports_preview_metadata": True, "max_upload_size": 104857600},
    }
    for socket, client_id in ((legacy, "legacy"), (modern, "modern")):
        workflow = work_workflow(0.02, 2, previews=True, seed=hash(client_id) % 1000)
        prompt_id = (await post(http, comfy, {"prompt": workflow, "client_id": client_id}))[
            "prompt_id"
        ]
        await socket.until_done(prompt_id)
    assert len(legacy.binary) == 2 and len(modern.binary) == 2
    assert legacy.binary[0][:8] == b"\x00\x00\x00\x01\x00\x00\x00\x02"
    assert legacy.binary[0][8:12] == b"\x89PNG"
    frame = modern.binary[0]
    assert frame[:4] == b"\x00\x00\x00\x04"
    length = int.from_bytes(frame[4:8], "big")
    import json

    metadata = json.loads(frame[8 : 8 + length])
    assert metadata["node_id"] == "2" and metadata["image_type"] == "image/png"
    assert frame[8 + length : 12 + length] == b"\x89PNG"
