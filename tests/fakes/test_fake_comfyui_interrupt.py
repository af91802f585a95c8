"""Fake ComfyUI: global and targeted interrupts, between nodes, inside nodes and while hanging."""

from __future__ import annotations

from fakes_testkit import chain_workflow, load_capture, of_type, types, work_workflow, ws_messages


async def submit(http, server, body) -> str:
    async with http.post(server.url + "/prompt", json=body) as response:
        assert response.status == 200
        prompt_id: str = (await response.json())["prompt_id"]
        return prompt_id


async def interrupt(http, server, body=None) -> None:
    kwargs = {} if body is None else {"json": body}
    async with http.post(server.url + "/interrupt", **kwargs) as response:
        assert response.status == 200
        assert await response.read() == b""


def recorded_interrupt(name: str) -> dict:
    messages = ws_messages(load_capture(name))
    return next(m for m in messages if m["type"] == "execution_interrupted")


async def test_global_interrupt_lands_on_the_next_node(http, comfy, connect):
    """Like the blur chain capture: the node after the running one is announced, then
    interrupted without running."""
    recorded = recorded_interrupt("ws_interrupt_midrun.jsonl")
    socket = await connect(comfy, "c1")
    prompt_id = await submit(
        http, comfy, {"prompt": chain_workflow((0.0, 0.5, 0.0)), "client_id": "c1"}
    )
    await socket.until(lambda m: of_type(m, "executing", node="11"))
    await interrupt(http, comfy)
    messages = await socket.until_done(prompt_id)

    assert types(messages) == [
        "progress_state",  # 11 finished: a node without progress runs to its end
        "progress_state",  # 12 running
        "executing",
        "execution_interrupted",
        "status",
        "executing",
    ]
    assert messages[2]["data"]["node"] == "12"
    event = messages[3]["data"]
    assert list(event) == list(recorded["data"])
    assert event["node_id"] == "12" and event["node_type"] == "FakeWork"
    assert event["executed"] == ["11", "10", "1"]
    assert messages[4]["data"]["status"]["exec_info"]["queue_remaining"] == 0

    expected = load_capture("get_history_interrupted.json")["body_json"]
    (captured,) = expected.values()
    async with http.get(f"{comfy.url}/history/{prompt_id}") as response:
        entry = (await response.json())[prompt_id]
    assert entry["outputs"] == captured["outputs"] == {}
    assert entry["meta"] == captured["meta"] == {}
    assert entry["status"]["status_str"] == captured["status"]["status_str"] == "error"
    assert entry["status"]["completed"] is False
    assert [e for e, _ in entry["status"]["messages"]] == [
        e for e, _ in captured["status"]["messages"]
    ]


async def test_interrupted_prefix_stays_cached(http, comfy, connect):
    socket = await connect(comfy, "c1")
    workflow = chain_workflow((0.0, 0.3, 0.0), seed=7)
    prompt_id = await submit(http, comfy, {"prompt": workflow, "client_id": "c1"})
    await socket.until(lambda m: of_type(m, "executing", node="11"))
    await interrupt(http, comfy)
    await socket.until_done(prompt_id)

    rerun = await submit(http, comfy, {"prompt": workflow, "client_id": "c1"})
    messages = await socket.until_done(rerun)
    cached = next(m for m in messages if m["type"] == "execution_cached")["data"]["nodes"]
    assert cached == ["1", "10", "11"]
    assert "execution_success" in types(messages)


async def test_targeted_interrupt_acts_only_on_the_running_prompt(http, comfy, connect):
    socket = await connect(comfy, "c1")
    running = await submit(
        http, comfy, {"prompt": work_workflow(outcome="hang"), "client_id": "c1"}
    )
    pending = await submit(http, comfy, {"prompt": work_workflow(seed=5), "client_id": "c1"})
    await socket.until(lambda m: of_type(m, "executing", node="2"))

    await interrupt(http, comfy, {"prompt_id": "not-this-one"})
    await interrupt(http, comfy, {"prompt_id": pending})
    assert comfy.state()["interrupt_requested"] is False

    await interrupt(http, comfy, {"prompt_id": running})
    messages = await socket.until_done(running)
    event = next(m for m in messages if m["type"] == "execution_interrupted")["data"]
    assert (event["node_id"], event["executed"]) == ("2", ["1"])
    # The queue carries on with the next prompt.
    assert "execution_success" in types(await socket.until_done(pending))


async def test_interrupt_inside_a_progress_node(http, comfy, connect):
    recorded = recorded_interrupt("ws_progress_upscale_interrupt_midnode.jsonl")
    socket = await connect(comfy, "c1")
    prompt_id = await submit(http, comfy, {"prompt": work_workflow(10.0, 100), "client_id": "c1"})
    await socket.until(lambda m: of_type(m, "progress", value=2))
    await interrupt(http, comfy, {"prompt_id": prompt_id})
    messages = await socket.until_done(prompt_id, timeout_s=2)

    assert types(messages)[-3:] == ["execution_interrupted", "status", "executing"]
    event = messages[-3]["data"]
    assert list(event) == list(recorded["data"])
    assert (event["node_id"], event["node_type"], event["executed"]) == ("2", "FakeWork", ["1"])
    values = [m["data"]["value"] for m in messages if m["type"] == "progress"]
    assert len(values) <= 2  # stopped at the next progress callback


async def test_hang_runs_until_a_global_interrupt(http, comfy, connect):
    socket = await connect(comfy, "c1")
    prompt_id = await submit(
        http, comfy, {"prompt": work_workflow(0.02, 2, outcome="hang"), "client_id": "c1"}
    )
    await socket.until(lambda m: of_type(m, "progress", value=2))
    assert comfy.state()["running"] == [prompt_id]
    await interrupt(http, comfy)
    messages = await socket.until_done(prompt_id)
    assert "execution_interrupted" in types(messages)


async def test_interrupt_while_idle_is_lost(http, comfy, connect):
    socket = await connect(comfy, "c1")
    await interrupt(http, comfy)
    await interrupt(http, comfy, {"prompt_id": "nothing-runs"})
    prompt_id = await submit(http, comfy, {"prompt": work_workflow(), "client_id": "c1"})
    messages = await socket.until_done(prompt_id)
    assert "execution_success" in types(messages)


async def test_interrupt_of_a_prompt_without_client_id_is_broadcast(http, comfy, connect):
    socket = await connect(comfy, "watcher")
    prompt_id = await submit(http, comfy, {"prompt": work_workflow(outcome="hang")})
    await socket.until(lambda m: of_type(m, "progress_state") and "2" in m["data"]["nodes"])
    await interrupt(http, comfy)
    message = (await socket.until(lambda m: m["type"] == "execution_interrupted"))[-1]
    assert message["data"]["prompt_id"] == prompt_id


async def test_interrupt_body_may_be_empty_or_invalid(http, comfy):
    async with http.post(comfy.url + "/interrupt", data=b"{not json") as response:
        assert response.status == 200
    async with http.post(comfy.url + "/api/interrupt", json={}) as response:
        assert response.status == 200
