"""Fake ComfyUI: fault hooks (restart, slow start, dropped sockets, config) in process and
over ``/fake/*``."""

from __future__ import annotations

import aiohttp
import pytest
from fakes_testkit import of_type, work_workflow

from supervisor.sim.comfyui import FakeComfyUI


async def submit(http, server, body) -> dict:
    async with http.post(server.url + "/prompt", json=body) as response:
        result: dict = await response.json()
        return result


async def test_restart_over_http_forgets_everything(http, comfy, connect):
    socket = await connect(comfy, "c")
    done = await submit(http, comfy, {"prompt": work_workflow(seed=1), "client_id": "c"})
    await socket.until_done(done["prompt_id"])
    running = await submit(http, comfy, {"prompt": work_workflow(outcome="hang"), "client_id": "c"})
    await socket.until(lambda m: of_type(m, "executing", node="2"))
    await submit(http, comfy, {"prompt": work_workflow(seed=3), "client_id": "c"})

    async with http.post(comfy.url + "/fake/restart", json={"delay_s": 0}) as response:
        assert response.status == 200
        assert await response.json() == {"restarting": True, "delay_s": 0.0}
    # The WebSocket drops: that is how a client notices a restart.
    with pytest.raises(ConnectionError):
        await socket.until(lambda m: False)
    await comfy.wait_for_sockets(lambda sids: not sids)
    await comfy.wait_ready()

    async with http.get(comfy.url + "/fake/state") as response:
        state = await response.json()
    assert state["restarts"] == 1 and state["number"] == 0
    assert state["running"] == state["pending"] == state["history"] == []
    async with http.get(f"{comfy.url}/history/{running['prompt_id']}") as response:
        assert await response.json() == {}
    again = await connect(comfy, "c")
    result = await submit(http, comfy, {"prompt": work_workflow(seed=1), "client_id": "c"})
    assert result["number"] == 0  # the counter starts again: another sign of a restart
    messages = await again.until_done(result["prompt_id"])
    cached = next(m for m in messages if m["type"] == "execution_cached")
    assert cached["data"]["nodes"] == []  # the cache is gone too


async def test_slow_start_refuses_connections(http, comfy_factory):
    comfy = await comfy_factory(startup_delay_s=0.3)
    assert comfy.port != 0 and not comfy.ready
    with pytest.raises(aiohttp.ClientConnectorError):
        await http.get(comfy.url + "/system_stats")
    await comfy.wait_ready(timeout_s=5)
    async with http.get(comfy.url + "/system_stats") as response:
        assert response.status == 200


async def test_slow_start_in_503_mode(http, comfy_factory):
    comfy = await comfy_factory(startup_delay_s=0.3, startup_mode="503")
    async with http.get(comfy.url + "/prompt") as response:
        assert response.status == 503
    async with http.get(comfy.url + "/fake/state") as response:
        assert response.status == 200 and (await response.json())["ready"] is False
    await comfy.wait_ready(timeout_s=5)
    async with http.get(comfy.url + "/prompt") as response:
        assert response.status == 200


async def test_restart_with_delay_closes_the_port_then_reopens(http, comfy):
    await comfy.restart(delay_s=0.3)
    with pytest.raises(aiohttp.ClientConnectorError):
        await http.get(comfy.url + "/prompt")
    await comfy.wait_ready(timeout_s=5)
    async with http.get(comfy.url + "/prompt") as response:
        assert response.status == 200


async def test_keep_alive_connection_breaks_while_down(comfy):
    async with aiohttp.ClientSession() as session:
        async with session.get(comfy.url + "/prompt") as response:
            assert response.status == 200
        await comfy.restart(delay_s=5)
        # A POST: aiohttp would retry an idempotent GET on a new connection (refused here).
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.post(comfy.url + "/prompt", json={"prompt": work_workflow()})


async def test_drop_websockets_over_http(http, comfy, connect):
    first = await connect(comfy, "a")
    second = await connect(comfy, "b")
    async with http.post(comfy.url + "/fake/drop-ws") as response:
        assert await response.json() == {"dropped": 2}
    for socket in (first, second):
        with pytest.raises(ConnectionError):
            await socket.next()
    third = await connect(comfy, "c")
    assert await comfy.drop_websockets(abrupt=True) == 1
    with pytest.raises(ConnectionError):
        await third.next()


async def test_dropped_socket_misses_events_but_the_prompt_finishes(http, comfy, connect):
    socket = await connect(comfy, "c")
    result = await submit(http, comfy, {"prompt": work_workflow(0.1, 2), "client_id": "c"})
    await socket.until(lambda m: of_type(m, "progress", value=1))
    await comfy.drop_websockets()
    again = await connect(comfy, "c")
    messages = await again.until_done(result["prompt_id"])
    assert "execution_success" in [m["type"] for m in messages]


async def test_config_over_http(http, comfy):
    async with http.post(
        comfy.url + "/fake/config", json={"history_delay_s": 0.5, "caching": False}
    ) as response:
        assert response.status == 200
        options = await response.json()
    assert options["history_delay_s"] == 0.5 and options["caching"] is False
    assert comfy.options.history_delay_s == 0.5
    for bad in ({"caching": "yes"}, {"no_such_option": 1}, {"comfyui_version": "1"}, [1]):
        async with http.post(comfy.url + "/fake/config", json=bad) as response:
            assert response.status == 400
            assert "error" in await response.json()
    with pytest.raises(ValueError):
        comfy.configure(history_delay_s=-1)


async def test_fake_routes_are_not_under_api(http, comfy):
    async with http.get(comfy.url + "/api/fake/state") as response:
        assert response.status == 404


async def test_server_can_be_used_as_a_context_manager(http):
    async with FakeComfyUI() as comfy, http.get(comfy.url + "/prompt") as response:
        assert await response.json() == {"exec_info": {"queue_remaining": 0}}
    with pytest.raises(aiohttp.ClientConnectorError):
        await http.get(comfy.url + "/prompt")
