"""The ComfyUI adapter against the fake ComfyUI, a real server on a loopback port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from backends_testkit import (
    PNG_MAGIC,
    ProgressLog,
    backend_tasks,
    fake_graph,
    nondecreasing,
)

from supervisor.backends.base import (
    BackendUnavailable,
    JobInterrupted,
    JobRejected,
    JobRuntimeError,
)
from supervisor.backends.comfyui import ComfyUIBackend
from supervisor.sim.comfyui import FakeComfyUI
from tests.helpers import eventually

ADAPTER_LOG = "supervisor.backends.comfyui"


async def _post_prompt(
    http: aiohttp.ClientSession, server: FakeComfyUI, body: dict[str, Any]
) -> str:
    """Submit a prompt as another client would (no client_id: none of our frames)."""
    async with http.post(f"{server.url}/prompt", json=body) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["prompt_id"])


# -- success ------------------------------------------------------------------------------


async def test_success_returns_png_outputs_and_increasing_progress(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ADAPTER_LOG)
    progress = ProgressLog()
    result = await comfyui.run("job-1", fake_graph("job-1", 0.3, steps=3), progress)

    [output] = result.outputs
    assert output.filename == "img_00001_.png"
    assert output.content_type == "image/png"
    assert output.data.startswith(PNG_MAGIC)
    prompt_id = result.details["prompt_id"]
    assert comfy_server.state()["history"] == [prompt_id]
    assert progress.calls[-1] == (1.0, "done")
    assert nondecreasing(progress.fractions)
    assert 0.0 < progress.fractions[-2] < 1.0
    assert {"FakeWork 1/3", "FakeWork 2/3", "FakeWork 3/3"} <= set(progress.texts)
    messages = [r.getMessage() for r in caplog.records if r.name == ADAPTER_LOG]
    assert any(f"job job-1 submitted as prompt {prompt_id}" in m for m in messages)
    assert any(f"job job-1 prompt {prompt_id} running" in m for m in messages)
    assert any(f"job job-1 prompt {prompt_id} completed: 1 output(s)" in m for m in messages)


async def test_each_run_posts_a_fresh_uuid_prompt_id_and_our_client_id(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI
) -> None:
    first = await comfyui.run("a", fake_graph("a", seed=1), ProgressLog())
    second = await comfyui.run("b", fake_graph("b", seed=2), ProgressLog())
    ids = [first.details["prompt_id"], second.details["prompt_id"]]
    assert ids[0] != ids[1] and all(len(i) == 36 for i in ids)
    assert comfy_server.state()["sockets"] == [comfyui.client_id]


async def test_body_form_of_the_workflow_is_unwrapped(comfyui: ComfyUIBackend) -> None:
    body = {"prompt": fake_graph("body"), "client_id": "not-ours", "number": 7}
    result = await comfyui.run("body", body, ProgressLog())
    assert len(result.outputs) == 1


async def test_cached_resubmit_returns_the_earlier_files(comfyui: ComfyUIBackend) -> None:
    graph = fake_graph("cached", 0.05, steps=1)
    first = await comfyui.run("cached-1", graph, ProgressLog())
    progress = ProgressLog()
    second = await comfyui.run("cached-2", graph, progress)

    assert second.details["prompt_id"] != first.details["prompt_id"]
    assert [o.filename for o in second.outputs] == [o.filename for o in first.outputs]
    assert second.outputs[0].data == first.outputs[0].data
    # Nothing executed: every node came from the cache, so no FakeWork bar.
    assert not any("FakeWork" in text for text in progress.texts)
    assert progress.calls[-1] == (1.0, "done") and nondecreasing(progress.fractions)


async def test_outputs_that_failed_validation_are_dropped_and_reported(
    comfyui: ComfyUIBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ADAPTER_LOG)
    graph = fake_graph("partial")
    graph["4"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "broken"}}
    result = await comfyui.run("partial", graph, ProgressLog())

    assert len(result.outputs) == 1
    errors = result.details["node_errors"]
    assert list(errors) == ["4"]
    assert errors["4"]["errors"][0]["type"] == "required_input_missing"
    assert any("outputs dropped by validation" in r.getMessage() for r in caplog.records)


async def test_history_race_done_only_on_executing_null(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI
) -> None:
    # History is written this long after execution_success (ComfyUI issue #11540).
    comfy_server.configure(history_delay_s=0.3)
    result = await comfyui.run("race", fake_graph("race", 0.05, steps=1), ProgressLog())
    assert len(result.outputs) == 1 and result.outputs[0].data.startswith(PNG_MAGIC)


# -- rejected and failed ------------------------------------------------------------------


def _with(graph: dict[str, Any], node: str, **inputs: Any) -> dict[str, Any]:
    graph[node]["inputs"].update(inputs)
    return graph


@pytest.mark.parametrize(
    ("graph", "error_type", "node", "message"),
    [
        (
            _with(fake_graph("v"), "1", width=0),
            "prompt_outputs_failed_validation",
            "1",
            "Value 0 smaller than min of 1",
        ),
        (
            _with(fake_graph("v"), "1", width="abc"),
            "prompt_outputs_failed_validation",
            "1",
            "Failed to convert an input value to a INT value",
        ),
        (
            _with(fake_graph("v"), "3", images=["99", 0]),
            "prompt_outputs_failed_validation",
            "3",
            "Exception when validating node",
        ),
        (
            {**fake_graph("v"), "2": {"class_type": "NoSuchNode", "inputs": {}}},
            "invalid_prompt",
            "2",
            "Cannot execute because node NoSuchNode does not exist.",
        ),
        (
            {"1": fake_graph("v")["1"]},
            "prompt_no_outputs",
            None,
            "Prompt has no outputs",
        ),
    ],
    ids=["out-of-range", "wrong-type", "missing-link", "unknown-class", "no-outputs"],
)
async def test_validation_error_is_rejected_with_node_and_message(
    comfyui: ComfyUIBackend,
    comfy_server: FakeComfyUI,
    graph: dict[str, Any],
    error_type: str,
    node: str | None,
    message: str,
) -> None:
    with pytest.raises(JobRejected) as info:
        await comfyui.run("bad", graph, ProgressLog())
    error = info.value.error
    assert (error.type, error.node, error.kind) == (error_type, node, "final")
    assert message in error.message
    assert comfy_server.state()["history"] == []


async def test_a_graph_the_server_could_not_parse_is_rejected_before_posting(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI
) -> None:
    with pytest.raises(JobRejected) as info:
        await comfyui.run("list", {"prompt": [1, 2]}, ProgressLog())
    assert info.value.error.type == "invalid_prompt"
    assert comfy_server.state()["number"] == 0  # nothing was posted


async def test_runtime_error_carries_node_type_and_traceback(
    comfyui: ComfyUIBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ADAPTER_LOG)
    graph = fake_graph("boom", 0.05, outcome="error", error_message="CUDA out of memory")
    with pytest.raises(JobRuntimeError) as info:
        await comfyui.run("boom", graph, ProgressLog())
    error = info.value.error
    assert (error.type, error.node, error.kind) == ("RuntimeError", "2", "job")
    assert error.message == "CUDA out of memory"
    assert error.details["node_type"] == "FakeWork"
    assert error.details["traceback"] and len(error.details["traceback"]) <= 8
    assert any("job boom prompt" in r.getMessage() and "failed" in r.getMessage()
               for r in caplog.records)  # fmt: skip


# -- interrupt and cancel -----------------------------------------------------------------


async def test_interrupt_mid_run_is_targeted(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    progress = ProgressLog()
    run = asyncio.create_task(comfyui.run("stop", fake_graph("stop", 0.1, 2, "hang"), progress))
    await progress.wait_text("FakeWork 2/2")
    [prompt_id] = comfy_server.state()["running"]
    await comfyui.interrupt()
    with pytest.raises(JobInterrupted):
        await run
    entry = comfy_server.queue.history[prompt_id]
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    fake_lines = [r.getMessage() for r in caplog.records if r.name.startswith("supervisor.sim")]
    assert any(f"interrupting prompt {prompt_id}" in line for line in fake_lines)
    assert not any("global interrupt" in line for line in fake_lines)


async def test_interrupt_while_pending_deletes_it_and_spares_the_running_prompt(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI, http: aiohttp.ClientSession
) -> None:
    blocker = await _post_prompt(http, comfy_server, {"prompt": fake_graph("other", 0, 0, "hang")})
    await eventually(lambda: comfy_server.state()["running"] == [blocker])
    progress = ProgressLog()
    run = asyncio.create_task(comfyui.run("waits", fake_graph("waits"), progress))
    await progress.wait_text("queued")
    await comfyui.interrupt()
    with pytest.raises(JobInterrupted):
        await run
    state = comfy_server.state()
    assert state["pending"] == [] and state["running"] == [blocker]
    async with http.post(f"{comfy_server.url}/interrupt") as response:
        assert response.status == 200


async def test_interrupt_when_idle_does_nothing(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI
) -> None:
    await comfyui.interrupt()
    assert comfy_server.state()["interrupt_requested"] is False


async def test_cancelling_the_run_propagates_and_stops_the_prompt(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI
) -> None:
    progress = ProgressLog()
    run = asyncio.create_task(comfyui.run("cancel", fake_graph("cancel", 0, 0, "hang"), progress))
    await progress.wait_text("FakeWork")
    [prompt_id] = comfy_server.state()["running"]
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await eventually(lambda: prompt_id in comfy_server.state()["history"])
    assert comfy_server.state()["running"] == []
    await comfyui.aclose()
    assert backend_tasks() == []
    await eventually(lambda: comfy_server.state()["sockets"] == [])


# -- the socket and the server going away --------------------------------------------------


@pytest.mark.parametrize("abrupt", [False, True], ids=["close-frame", "tcp-cut"])
async def test_dropped_websocket_mid_run_completes_by_polling(
    comfyui: ComfyUIBackend,
    comfy_server: FakeComfyUI,
    caplog: pytest.LogCaptureFixture,
    abrupt: bool,
) -> None:
    caplog.set_level(logging.INFO, logger=ADAPTER_LOG)
    progress = ProgressLog()
    run = asyncio.create_task(comfyui.run("drop", fake_graph("drop", 0.6, 6), progress))
    await progress.wait_text("FakeWork 1/6")
    old_client = comfyui.client_id
    assert await comfy_server.drop_websockets(abrupt=abrupt) == 1
    result = await asyncio.wait_for(run, 5)
    assert len(result.outputs) == 1 and progress.calls[-1] == (1.0, "done")
    assert any("websocket lost" in r.getMessage() for r in caplog.records)

    # The socket came back under a new clientId, and the next job follows it again.
    await eventually(lambda: comfyui.client_id not in (None, old_client))
    progress = ProgressLog()
    await comfyui.run("after", fake_graph("after", 0.1, 2), progress)
    assert "FakeWork 2/2" in progress.texts
    assert comfy_server.state()["sockets"] == [comfyui.client_id]


async def test_restart_mid_run_is_backend_unavailable(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI
) -> None:
    progress = ProgressLog()
    run = asyncio.create_task(comfyui.run("lost", fake_graph("lost", 5, 50), progress))
    await progress.wait_text("FakeWork 1/50")
    await comfy_server.restart(delay_s=0)
    with pytest.raises(BackendUnavailable, match="vanished"):
        await asyncio.wait_for(run, 5)
    assert (await comfyui.probe()).ready  # and it is usable again


async def test_backend_down_longer_than_the_grace_is_backend_unavailable(
    comfy_server: FakeComfyUI, comfyui_factory: Callable[..., ComfyUIBackend]
) -> None:
    comfyui = comfyui_factory(comfy_server.url, restart_grace_s=0.3)
    progress = ProgressLog()
    run = asyncio.create_task(comfyui.run("down", fake_graph("down", 5, 50), progress))
    await progress.wait_text("FakeWork 1/50")
    await comfy_server.restart(delay_s=30)  # the port stays closed
    with pytest.raises(BackendUnavailable, match=r"unreachable for more than 0\.3 s"):
        await asyncio.wait_for(run, 5)
    probe = await comfyui.probe()
    assert not probe.alive and "cannot connect" in probe.detail


async def test_server_down_probe_and_run(
    comfy_server: FakeComfyUI, comfyui_factory: Callable[..., ComfyUIBackend]
) -> None:
    url = comfy_server.url
    await comfy_server.stop()
    comfyui = comfyui_factory(url)
    probe = await comfyui.probe()
    assert (probe.alive, probe.idle, probe.ready) == (False, False, False)
    assert probe.detail
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        await comfyui.run("nobody", fake_graph("nobody"), ProgressLog())


# -- probe --------------------------------------------------------------------------------


async def test_probe_idle_reports_version_and_devices(comfyui: ComfyUIBackend) -> None:
    probe = await comfyui.probe()
    assert probe.ready and probe.detail == ""
    assert probe.info["version"] == "0.3.64"
    [device] = probe.info["devices"]
    assert device["type"] == "cuda" and device["vram_total"] > 0


async def test_probe_busy_backend_is_not_idle(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI, http: aiohttp.ClientSession
) -> None:
    await _post_prompt(http, comfy_server, {"prompt": fake_graph("busy", 0, 0, "hang")})
    probe = await comfyui.probe()
    assert probe.alive and not probe.idle
    assert probe.detail == "1 prompt(s) queued or running"
    assert probe.info["queue_remaining"] == 1
    async with http.post(f"{comfy_server.url}/interrupt") as response:
        assert response.status == 200


async def test_probe_while_our_job_runs_is_not_idle(comfyui: ComfyUIBackend) -> None:
    progress = ProgressLog()
    run = asyncio.create_task(comfyui.run("mine", fake_graph("mine", 0, 0, "hang"), progress))
    await progress.wait_text("FakeWork")
    probe = await comfyui.probe()
    assert probe.alive and not probe.idle and probe.detail == "running job mine"
    await comfyui.interrupt()
    with pytest.raises(JobInterrupted):
        await run
