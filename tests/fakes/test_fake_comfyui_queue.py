"""Fake ComfyUI: the priority heap, ``number``, ``front``, ``/queue`` delete and clear,
``/prompt`` counts and ``/history`` paging."""

from __future__ import annotations

from fakes_testkit import load_capture, of_type, types, work_workflow


async def submit(http, server, body) -> dict:
    async with http.post(server.url + "/prompt", json=body) as response:
        result: dict = await response.json()
        return result


async def get(http, url) -> object:
    async with http.get(url) as response:
        assert response.status == 200
        return await response.json()


async def test_queue_delete_front_and_heap_order(http, comfy, connect):
    """The qdel capture: A runs, B/C pending, D with front; B deleted; order A, D, C."""
    captured_pending = load_capture("get_queue_with_pending.json")["body_json"]["queue_pending"]
    socket = await connect(comfy, "q")
    a = await submit(http, comfy, {"prompt": work_workflow(outcome="hang"), "client_id": "q"})
    await socket.until(lambda m: of_type(m, "executing", node="2"))
    b = await submit(http, comfy, {"prompt": work_workflow(seed=2), "client_id": "q"})
    c = await submit(http, comfy, {"prompt": work_workflow(seed=3), "client_id": "q"})
    d = await submit(
        http, comfy, {"prompt": work_workflow(seed=4), "client_id": "q", "front": True}
    )
    assert [a["number"], b["number"], c["number"], d["number"]] == [0, 1, 2, -3]

    queue = await get(http, comfy.url + "/queue")
    assert [item[0] for item in queue["queue_pending"]] == [
        -3,
        2,
        1,
    ]  # raw heap, like [-30, 29, 28]
    assert [item[0] for item in captured_pending] == [-30, 29, 28]
    assert all(len(item) == 5 for item in queue["queue_pending"] + queue["queue_running"])
    assert queue["queue_running"][0][1] == a["prompt_id"]
    assert queue["queue_running"][0][3] == {"client_id": "q"}
    assert queue["queue_running"][0][4] == ["3"]
    assert await get(http, comfy.url + "/prompt") == {"exec_info": {"queue_remaining": 4}}
    await socket.until(lambda m: of_type(m, "status", status={"exec_info": {"queue_remaining": 4}}))

    async with http.post(
        comfy.url + "/queue", json={"delete": [b["prompt_id"], a["prompt_id"], "unknown"]}
    ) as response:
        assert response.status == 200 and await response.read() == b""
    status = await socket.next()
    assert status == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 3}}}}
    assert comfy.state()["running"] == [a["prompt_id"]]  # the running one cannot be deleted

    async with http.post(comfy.url + "/interrupt") as response:
        assert response.status == 200
    await socket.until_done(a["prompt_id"])
    order = []
    for _ in range(2):
        messages = await socket.until(lambda m: of_type(m, "executing", node=None))
        order.append(messages[-1]["data"]["prompt_id"])
    assert order == [d["prompt_id"], c["prompt_id"]]
    history = await get(http, f"{comfy.url}/history/{b['prompt_id']}")
    assert history == {}


async def test_deleting_the_last_pending_item_reports_twice(http, comfy, connect):
    """ComfyUI wipes the queue when the last item goes, which sends one more status."""
    socket = await connect(comfy, "q")
    a = await submit(http, comfy, {"prompt": work_workflow(outcome="hang"), "client_id": "q"})
    await socket.until(lambda m: of_type(m, "executing", node="2"))
    b = await submit(http, comfy, {"prompt": work_workflow(seed=9), "client_id": "q"})
    await socket.until(lambda m: m["type"] == "status")
    async with http.post(comfy.url + "/queue", json={"delete": [b["prompt_id"]]}):
        pass
    assert types([await socket.next(), await socket.next()]) == ["status", "status"]
    await comfy.restart(delay_s=0)
    assert a["prompt_id"] not in comfy.state()["history"]


async def test_queue_clear(http, comfy, connect):
    socket = await connect(comfy, "q")
    await submit(http, comfy, {"prompt": work_workflow(outcome="hang"), "client_id": "q"})
    await socket.until(lambda m: of_type(m, "executing", node="2"))
    for seed in range(3):
        await submit(http, comfy, {"prompt": work_workflow(seed=seed + 10), "client_id": "q"})
    async with http.post(comfy.url + "/queue", json={"clear": True}) as response:
        assert response.status == 200
    queue = await get(http, comfy.url + "/queue")
    assert queue["queue_pending"] == [] and len(queue["queue_running"]) == 1


async def test_number_advances_on_rejected_posts_but_not_on_explicit_numbers(http, comfy):
    first = await submit(http, comfy, {"prompt": work_workflow(seed=1)})
    for body in ({"prompt": {}}, {"no": "prompt"}, [1, 2]):
        async with http.post(comfy.url + "/prompt", json=body) as response:
            assert response.status == 400
    async with http.post(comfy.url + "/prompt", json={"prompt": [1, 2]}) as response:
        assert response.status == 500
    async with http.post(comfy.url + "/prompt", data=b"{not json") as response:
        assert response.status == 500  # fails before the counter
    explicit = await submit(http, comfy, {"prompt": work_workflow(seed=2), "number": 7})
    last = await submit(http, comfy, {"prompt": work_workflow(seed=3)})
    assert (first["number"], explicit["number"], last["number"]) == (0, 7.0, 5)


async def test_client_prompt_id_is_honoured_and_may_repeat(http, comfy, connect):
    socket = await connect(comfy, "q")
    for seed in (1, 2):
        body = {"prompt": work_workflow(seed=seed), "client_id": "q", "prompt_id": "job-123"}
        result = await submit(http, comfy, body)
        assert result["prompt_id"] == "job-123"
        await socket.until_done("job-123")
    history = await get(http, comfy.url + "/history/job-123")
    assert history["job-123"]["prompt"][2]["2"]["inputs"]["seed"] == 2
    assert list(await get(http, comfy.url + "/history")) == ["job-123"]


async def test_history_paging_delete_and_clear(http, comfy, connect):
    socket = await connect(comfy, "q")
    ids = []
    for seed in range(4):
        result = await submit(http, comfy, {"prompt": work_workflow(seed=seed), "client_id": "q"})
        await socket.until_done(result["prompt_id"])
        ids.append(result["prompt_id"])
    assert list(await get(http, comfy.url + "/history")) == ids
    assert list(await get(http, comfy.url + "/history?max_items=1")) == ids[-1:]
    assert list(await get(http, comfy.url + "/history?max_items=2&offset=1")) == ids[1:3]
    assert await get(http, comfy.url + "/history/does-not-exist") == {}
    async with http.post(comfy.url + "/history", json={"delete": [ids[0]]}) as response:
        assert response.status == 200 and await response.read() == b""
    assert list(await get(http, comfy.url + "/history")) == ids[1:]
    async with http.post(comfy.url + "/api/history", json={"clear": True}) as response:
        assert response.status == 200
    assert await get(http, comfy.url + "/history") == {}


async def test_history_is_bounded(http, comfy_factory, connect):
    comfy = await comfy_factory(max_history=2)
    socket = await connect(comfy, "q")
    ids = []
    for seed in range(5):
        result = await submit(http, comfy, {"prompt": work_workflow(seed=seed), "client_id": "q"})
        await socket.until_done(result["prompt_id"])
        ids.append(result["prompt_id"])
    # ComfyUI evicts before inserting once it holds more than the maximum.
    assert list(await get(http, comfy.url + "/history")) == ids[-3:]


async def test_pending_and_running_prompts_have_no_history(http, comfy, connect):
    socket = await connect(comfy, "q")
    running = await submit(http, comfy, {"prompt": work_workflow(outcome="hang"), "client_id": "q"})
    await socket.until(lambda m: of_type(m, "executing", node="2"))
    pending = await submit(http, comfy, {"prompt": work_workflow(seed=1), "client_id": "q"})
    for prompt_id in (running["prompt_id"], pending["prompt_id"]):
        assert await get(http, f"{comfy.url}/history/{prompt_id}") == {}


async def test_partial_execution_targets(http, comfy, connect):
    socket = await connect(comfy, "q")
    workflow = work_workflow(seed=1)
    workflow["4"] = {
        "class_type": "PreviewImage",
        "inputs": {"images": ["1", 0]},
    }
    body = {"prompt": workflow, "client_id": "q", "partial_execution_targets": ["4"]}
    result = await submit(http, comfy, body)
    messages = await socket.until_done(result["prompt_id"])
    assert [m["data"]["node"] for m in messages if m["type"] == "executing"] == ["1", "4", None]
    output = next(m for m in messages if m["type"] == "executed")["data"]["output"]
    (image,) = output["images"]
    assert image["type"] == "temp" and image["subfolder"] == ""
    assert image["filename"].startswith("ComfyUI_temp_") and image["filename"].endswith(
        "_00001_.png"
    )
