"""Fake ComfyUI: which socket gets which message (client_id routing and its known bugs)."""

from __future__ import annotations

from fakes_testkit import load_capture, normalize, of_type, types, work_workflow, ws_messages


async def submit(http, server, body) -> str:
    async with http.post(server.url + "/prompt", json=body) as response:
        assert response.status == 200
        prompt_id: str = (await response.json())["prompt_id"]
        return prompt_id


def final_status(message) -> bool:
    return of_type(message, "status", status={"exec_info": {"queue_remaining": 0}})


async def test_observer_sees_only_broadcasts_like_the_capture(http, comfy, connect):
    """A prompt without client_id, then one for a client that is not connected."""
    recorded = ws_messages(load_capture("ws_observer_other_client_during_noclient_prompt.jsonl"))
    no_client = load_capture("post_prompt_no_client_id.json")["request"]["body"]
    other_client = load_capture("post_prompt_other_client_id.json")["request"]["body"]
    observer = await connect(comfy, "observer-244386")

    await submit(http, comfy, no_client)
    seen = await observer.until(final_status)
    await submit(http, comfy, other_client)
    seen += await observer.until(final_status)

    assert normalize(seen) == normalize(recorded[1:])


async def test_prompt_without_client_id_gives_nobody_execution_events(http, comfy, connect):
    socket = await connect(comfy, "someone")
    prompt_id = await submit(http, comfy, {"prompt": work_workflow(0.02, 2)})
    messages = await socket.until(final_status)
    assert set(types(messages)) == {"status", "progress_state", "progress"}
    assert all(m["data"]["prompt_id"] == prompt_id for m in messages if m["type"] != "status")
    async with http.get(f"{comfy.url}/history/{prompt_id}") as response:
        entry = (await response.json())[prompt_id]
    assert entry["prompt"][3] == {}
    assert entry["status"]["status_str"] == "success"


async def test_events_go_to_the_owner_only(http, comfy, connect):
    owner = await connect(comfy, "owner")
    bystander = await connect(comfy, "bystander")
    prompt_id = await submit(http, comfy, {"prompt": work_workflow(0.02, 2), "client_id": "owner"})
    owned = await owner.until_done(prompt_id)
    seen = await bystander.until(final_status)
    assert "execution_success" in types(owned) and "progress" in types(owned)
    assert types(seen) == ["status", "status", "status"]


async def test_socket_without_client_id_gets_a_generated_sid(http, comfy, connect):
    recorded = ws_messages(load_capture("ws_connect_without_clientId.jsonl"))[0]
    socket = await connect(comfy, None, read_status=False)
    first = await socket.next()
    assert first["type"] == recorded["type"] == "status"
    assert list(first["data"]) == list(recorded["data"])
    assert len(first["data"]["sid"]) == 32 and int(first["data"]["sid"], 16) >= 0
    assert comfy.state()["sockets"] == [first["data"]["sid"]]


async def test_duplicate_client_id_bug(http, comfy, connect):
    """The second socket with the same id takes over; when the first closes it also removes
    the second from the registry, which then receives nothing at all."""
    summary = load_capture("dupcid_summary.json")
    assert summary["second_socket_received_P2_messages"] is False
    first = await connect(comfy, "dup")
    second = await connect(comfy, "dup")
    observer = await connect(comfy, "observer")

    p1 = await submit(http, comfy, {"prompt": work_workflow(seed=1), "client_id": "dup"})
    assert "execution_success" in types(await second.until_done(p1))
    await observer.until(final_status)

    await first.ws.close()
    await comfy.wait_for_sockets(lambda sids: "dup" not in sids, timeout_s=5)
    assert comfy.state()["sockets"] == ["observer"]

    p2 = await submit(http, comfy, {"prompt": work_workflow(seed=2), "client_id": "dup"})
    await observer.until(final_status)
    async with http.get(f"{comfy.url}/history/{p2}") as response:
        assert p2 in await response.json()
    await second.expect_silence()


async def test_reconnect_mid_run_replays_executing_without_prompt_id(http, comfy, connect):
    recorded = ws_messages(load_capture("ws_reconnect_midrun_after.jsonl"))[:2]
    socket = await connect(comfy, "recon")
    prompt_id = await submit(http, comfy, {"prompt": work_workflow(5.0), "client_id": "recon"})
    await socket.until(lambda m: of_type(m, "executing", node="2"))
    await socket.ws.close()

    again = await connect(comfy, "recon", read_status=False)
    status, executing = await again.next(), await again.next()
    assert list(status["data"]) == list(recorded[0]["data"]) == ["status", "sid"]
    assert status["data"]["status"] == {"exec_info": {"queue_remaining": 1}}
    assert executing == {"type": "executing", "data": {"node": "2"}}
    assert list(executing["data"]) == list(recorded[1]["data"])

    async with http.post(comfy.url + "/interrupt", json={"prompt_id": prompt_id}) as response:
        assert response.status == 200
    # FakeWork without steps finishes its 5 s unless interrupted; a restart ends it at once.
    await comfy.restart(delay_s=0)


async def test_other_client_messages_are_ignored(http, comfy, connect):
    socket = await connect(comfy, "chatty")
    await socket.ws.send_str("not json")
    await socket.ws.send_json({"type": "credential_auth", "data": {}})
    await socket.ws.send_json({"type": "feature_flags", "data": {"x": 1}})  # not first
    prompt_id = await submit(http, comfy, {"prompt": work_workflow(), "client_id": "chatty"})
    messages = await socket.until_done(prompt_id)
    assert "feature_flags" not in types(messages)
