"""The A1111 adapter against the fake A1111, a real server on a loopback port."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from backends_testkit import PNG_MAGIC, ProgressLog, backend_tasks, nondecreasing

from supervisor.backends.a1111 import A1111Backend, sniff
from supervisor.backends.base import (
    BackendUnavailable,
    JobInterrupted,
    JobRejected,
    JobRuntimeError,
)
from supervisor.sim.a1111 import FakeA1111
from supervisor.sim.png import encode_solid_png
from tests.helpers import eventually

ADAPTER_LOG = "supervisor.backends.a1111"
ServerFactory = Callable[..., Awaitable[FakeA1111]]
AdapterFactory = Callable[..., A1111Backend]


def _tasks(server: FakeA1111) -> list[str]:
    return list(server.state()["finished_tasks"])


def _post_txt2img(
    http: aiohttp.ClientSession, server: FakeA1111, body: dict[str, Any]
) -> asyncio.Task[int]:
    """Another client's generation request, in the background; the task gives its status."""

    async def post() -> int:
        async with http.post(f"{server.url}/sdapi/v1/txt2img", json=body) as response:
            await response.read()
            return response.status

    return asyncio.create_task(post())


async def test_txt2img_returns_png_outputs_and_increasing_progress(
    a1111: A1111Backend, a1111_server: FakeA1111, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ADAPTER_LOG)
    progress = ProgressLog()
    body = {"prompt": "a cat", "steps": 10, "width": 64, "height": 48, "batch_size": 2}
    result = await a1111.run("job-7", body, progress)

    assert [o.filename for o in result.outputs] == ["job-7_0.png", "job-7_1.png"]
    assert all(o.content_type == "image/png" and o.data.startswith(PNG_MAGIC)
               for o in result.outputs)  # fmt: skip
    assert result.details["endpoint"] == "txt2img"
    assert result.details["info"]["all_prompts"] == ["a cat", "a cat"]
    assert _tasks(a1111_server) == ["fleetq-job-7"]  # our force_task_id
    assert [(d["role"], d["seed"]) for d in result.details["images"]] == [
        ("image", seed) for seed in result.details["info"]["all_seeds"]
    ]
    assert progress.calls[0] == (0.0, "submitted") and progress.calls[-1] == (1.0, "done")
    assert nondecreasing(progress.fractions)
    steps = [text for text in progress.texts if text.startswith("step ")]
    assert steps and all(text.endswith("/10") for text in steps)
    assert all(0.0 <= f < 1.0 for f in progress.fractions[1:-1])
    messages = [r.getMessage() for r in caplog.records if r.name == ADAPTER_LOG]
    assert any("job job-7 posted to" in m and m.endswith("/sdapi/v1/txt2img") for m in messages)
    assert any(m.startswith("job job-7 completed: 2 image(s)") for m in messages)


async def test_batches_show_in_the_progress_text(a1111: A1111Backend) -> None:
    progress = ProgressLog()
    await a1111.run("batches", {"prompt": "x", "steps": 5, "n_iter": 3}, progress)
    assert any(text.endswith("batch 2/3") for text in progress.texts)
    assert nondecreasing(progress.fractions)


async def test_init_images_route_to_img2img(a1111: A1111Backend, a1111_server: FakeA1111) -> None:
    init = base64.b64encode(encode_solid_png(8, 8, (1, 2, 3))).decode()
    body = {"prompt": "a dog", "steps": 4, "init_images": [init], "denoising_strength": 0.5}
    result = await a1111.run("i2i", body, ProgressLog())
    assert result.details["endpoint"] == "img2img"
    assert _tasks(a1111_server) == ["fleetq-i2i"]
    assert result.outputs[0].filename == "i2i_0.png"


def _png_b64(rgb: tuple[int, int, int] = (1, 2, 3)) -> str:
    return base64.b64encode(encode_solid_png(8, 8, rgb)).decode()


@pytest.mark.parametrize("shape", ["a1111", "forge"])
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"init_images": []}, "bad number of images passed"),
        ({"init_images": ["bm90IGFuIGltYWdl"]}, "Invalid encoded image"),
        ({"init_images": ["https://example.invalid/a.png"]}, "Invalid image url"),
        ({"enable_hr": True, "hr_upscaler": "Nope"}, "could not find upscaler named Nope"),
    ],
)
async def test_500s_that_are_request_errors_are_final(
    a1111_server_factory: ServerFactory,
    a1111_backend_factory: AdapterFactory,
    shape: str,
    body: dict[str, Any],
    message: str,
) -> None:
    server = await a1111_server_factory(error_shape=shape)
    with pytest.raises(JobRejected) as info:
        await a1111_backend_factory(server.url).run("bad", {"prompt": "x", **body}, ProgressLog())
    error = info.value.error
    assert (error.kind, error.details["status"]) == ("final", 500)
    assert message in error.message


async def test_only_generated_images_are_outputs_each_with_its_seed(
    a1111: A1111Backend,
) -> None:
    # save_images with two images puts a grid first; a ControlNet unit appends a detect map.
    unit = {"enabled": True, "module": "canny"}
    body = {
        "prompt": "x", "steps": 2, "batch_size": 2, "seed": 40, "save_images": True,
        "alwayson_scripts": {"controlnet": {"args": [unit]}},
    }  # fmt: skip
    result = await a1111.run("grid", body, ProgressLog())
    assert [o.filename for o in result.outputs] == ["grid_0.png", "grid_1.png"]
    assert result.details["images"] == [
        {"filename": "grid_0.png", "role": "image", "seed": 40},
        {"filename": "grid_1.png", "role": "image", "seed": 41},
    ]
    generated = [o.data for o in result.outputs]
    assert len(set(generated)) == 2


@pytest.mark.parametrize("per_job", [False, True])
async def test_extras_are_kept_and_labelled_when_asked(
    a1111_server: FakeA1111, a1111_backend_factory: AdapterFactory, per_job: bool
) -> None:
    a1111 = a1111_backend_factory(a1111_server.url, keep_extras=not per_job)
    asked = {"fleetq_keep_extras": True} if per_job else {}
    body = {
        **asked,
        "prompt": "x", "steps": 2, "batch_size": 2, "seed": 7, "save_images": True,
        "init_images": [_png_b64()], "mask": _png_b64(), "denoising_strength": 1.0,
        "override_settings": {"return_mask": True},
    }  # fmt: skip
    result = await a1111.run("all", body, ProgressLog())
    assert [(d["filename"], d["role"], d["seed"]) for d in result.details["images"]] == [
        ("all_grid_0.png", "grid", None),
        ("all_0.png", "image", 7),
        ("all_1.png", "image", 8),
        ("all_extra_0.png", "extra", None),
    ]
    assert [o.filename for o in result.outputs] == [d["filename"] for d in result.details["images"]]


async def test_a_missing_checkpoint_fails_instead_of_running_on_another(
    a1111_server_factory: ServerFactory, a1111_backend_factory: AdapterFactory
) -> None:
    server = await a1111_server_factory(
        models=("v1-5-pruned-emaonly.safetensors [6ce0161689]", "sd/xl.safetensors [31e35c80fc]")
    )
    a1111 = a1111_backend_factory(server.url)
    for name in ("sd/xl.safetensors [31e35c80fc]", "sd/xl.safetensors", "sd_xl"):
        body = {"prompt": "x", "steps": 1, "override_settings": {"sd_model_checkpoint": name}}
        result = await a1111.run("xl", body, ProgressLog())
        assert result.details["info"]["sd_model_hash"] == "31e35c80fc"
    missing = {"sd_model_checkpoint": "sdxl-turbo.safetensors [aaaaaaaaaa]"}
    with pytest.raises(JobRejected) as info:
        await a1111.run("m", {"prompt": "x", "steps": 1, "override_settings": missing},
                        ProgressLog())  # fmt: skip
    error = info.value.error
    assert (error.type, error.kind) == ("CheckpointNotFound", "final")
    assert "sdxl-turbo" in error.message and "v1-5-pruned-emaonly" in error.message


async def test_an_interrupt_from_someone_else_is_not_a_success(
    a1111: A1111Backend, a1111_server: FakeA1111, http: aiohttp.ClientSession
) -> None:
    progress = ProgressLog()
    run = asyncio.create_task(a1111.run("x", {"prompt": "fleetq:hang", "steps": 4}, progress))
    await progress.wait_text("step 3/4")
    async with http.post(f"{a1111_server.url}/sdapi/v1/interrupt") as response:
        assert response.status == 200  # the UI's Interrupt button, or another client
    with pytest.raises(JobRuntimeError) as info:
        await run
    assert (info.value.error.type, info.value.error.kind) == ("InterruptedElsewhere", "job")
    assert "partly denoised" in info.value.error.message


async def test_send_images_false_is_refused(a1111: A1111Backend, a1111_server: FakeA1111) -> None:
    with pytest.raises(JobRejected, match="send_images"):
        await a1111.run("n", {"prompt": "x", "send_images": False}, ProgressLog())
    assert _tasks(a1111_server) == []


async def test_hires_fix_progress_is_one_image_in_two_passes(
    a1111_server_factory: ServerFactory, a1111_backend_factory: AdapterFactory
) -> None:
    server = await a1111_server_factory(step_seconds=0.05)
    progress = ProgressLog()
    body = {"prompt": "x", "steps": 3, "enable_hr": True, "hr_second_pass_steps": 3}
    await a1111_backend_factory(server.url).run("hr", body, progress)
    assert any(text.endswith("/3 hires") for text in progress.texts)
    assert not any("batch" in text for text in progress.texts)
    assert nondecreasing(progress.fractions)


@pytest.mark.parametrize(
    ("shape", "control", "error_type", "message"),
    [
        ("a1111", "fleetq:fail", "RuntimeError", "fleetq:fail requested by the prompt"),
        ("a1111", "fleetq:oom", "OutOfMemoryError", "CUDA out of memory"),
        ("forge", "fleetq:oom", "OutOfMemoryError", "CUDA out of memory"),
        ("forge-legacy", "fleetq:fail", "InternalServerError", "without details"),
    ],
)
async def test_failure_is_a_runtime_error_in_both_shapes(
    a1111_server_factory: ServerFactory,
    a1111_backend_factory: AdapterFactory,
    shape: str,
    control: str,
    error_type: str,
    message: str,
) -> None:
    server = await a1111_server_factory(error_shape=shape)
    with pytest.raises(JobRuntimeError) as info:
        await a1111_backend_factory(server.url).run(
            "f", {"prompt": control, "steps": 4}, ProgressLog()
        )
    error = info.value.error
    assert (error.type, error.kind, error.details["status"]) == (error_type, "job", 500)
    assert message in error.message


@pytest.mark.parametrize("shape", ["a1111", "forge"])
async def test_bad_requests_are_rejected_in_both_shapes(
    a1111_server_factory: ServerFactory, a1111_backend_factory: AdapterFactory, shape: str
) -> None:
    server = await a1111_server_factory(error_shape=shape)
    a1111 = a1111_backend_factory(server.url)
    with pytest.raises(JobRejected) as info:
        await a1111.run("s", {"prompt": "x", "sampler_name": "Nope"}, ProgressLog())
    assert info.value.error.message == "Sampler not found"
    assert info.value.error.kind == "final"
    with pytest.raises(JobRejected) as info:
        await a1111.run("v", {"prompt": "x", "steps": "many"}, ProgressLog())
    assert info.value.error.type == "validation_error"
    assert info.value.error.message.startswith("steps: ")


async def test_interrupt_mid_run_is_job_interrupted(
    a1111: A1111Backend, a1111_server: FakeA1111, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    progress = ProgressLog()
    run = asyncio.create_task(a1111.run("stop", {"prompt": "fleetq:hang", "steps": 4}, progress))
    await progress.wait_text("step 3/4")
    await a1111.interrupt()
    with pytest.raises(JobInterrupted):
        await run
    assert a1111_server.shared_state.interrupted
    assert any("a1111" in r.getMessage() and "interrupt" in r.getMessage()
               for r in caplog.records if r.name.startswith("supervisor.sim"))  # fmt: skip


@pytest.mark.parametrize("webui", [False, True])
async def test_interrupt_while_queued_spares_the_foreign_job_and_stops_ours(
    a1111_server_factory: ServerFactory,
    a1111_backend_factory: AdapterFactory,
    http: aiohttp.ClientSession,
    webui: bool,
) -> None:
    # Someone else holds the lock (UI mode: told by our task id; API-only: by the job that
    # ran when ours was posted). Interrupting ours must not stop theirs; it reaches ours once
    # ours runs (an interrupt sent before a job begins is lost, so it is sent then).
    server = await a1111_server_factory(webui=webui)
    a1111 = a1111_backend_factory(server.url)
    other = _post_txt2img(http, server, {"prompt": "fleetq:hang", "steps": 10})
    await server.wait_until(lambda s: s.job_count > 0)
    progress = ProgressLog()
    run = asyncio.create_task(a1111.run("late", {"prompt": "fleetq:hang", "steps": 4}, progress))
    await eventually(lambda: server.waiting == 1)
    await progress.wait_text("another client")
    await a1111.interrupt()
    await server.wait_until(lambda s: s.sampling_step == 9)  # theirs waits at its last step
    assert not server.shared_state.interrupted
    async with http.post(f"{server.url}/sdapi/v1/skip") as response:  # they finish
        assert response.status == 200
    assert await other == 200
    with pytest.raises(JobInterrupted):
        await asyncio.wait_for(run, 5)
    assert server.shared_state.interrupted
    assert server.state()["finished_tasks"][-1] == "fleetq-late"


async def test_interrupt_when_idle_sends_nothing(
    a1111: A1111Backend, a1111_server: FakeA1111
) -> None:
    await a1111.interrupt()
    assert not a1111_server.shared_state.interrupted


async def test_cancelling_the_run_propagates_and_interrupts(
    a1111: A1111Backend, a1111_server: FakeA1111
) -> None:
    progress = ProgressLog()
    run = asyncio.create_task(a1111.run("c", {"prompt": "fleetq:hang", "steps": 4}, progress))
    await progress.wait_text("step 3/4")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert a1111_server.shared_state.interrupted
    assert backend_tasks() == []
    await a1111_server.wait_until(lambda s: s.job_count == 0)


async def test_server_down_probe_and_run(
    a1111_server: FakeA1111, a1111_backend_factory: AdapterFactory
) -> None:
    url = a1111_server.url
    await a1111_server.stop()
    a1111 = a1111_backend_factory(url)
    probe = await a1111.probe()
    assert not probe.alive and not probe.ready and "cannot connect" in probe.detail
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        await a1111.run("down", {"prompt": "x"}, ProgressLog())
    assert backend_tasks() == []


async def test_restart_mid_run_is_backend_unavailable(
    a1111: A1111Backend, a1111_server: FakeA1111
) -> None:
    progress = ProgressLog()
    run = asyncio.create_task(a1111.run("r", {"prompt": "fleetq:hang", "steps": 4}, progress))
    await progress.wait_text("step")
    await a1111_server.restart(delay_s=0)
    with pytest.raises(BackendUnavailable):
        await asyncio.wait_for(run, 5)


async def test_probe_idle_and_busy(
    a1111: A1111Backend, a1111_server: FakeA1111, http: aiohttp.ClientSession
) -> None:
    probe = await a1111.probe()
    assert probe.ready and probe.info["job_count"] == 0
    other = _post_txt2img(http, a1111_server, {"prompt": "fleetq:hang"})
    await a1111_server.wait_until(lambda s: s.job_count > 0)
    probe = await a1111.probe()
    assert probe.alive and not probe.idle and probe.detail == "busy with scripts_txt2img"
    async with http.post(f"{a1111_server.url}/sdapi/v1/interrupt") as response:
        assert response.status == 200
    assert await other == 200
    assert (await a1111.probe()).ready


@pytest.mark.parametrize(("webui", "shape"), [(True, "a1111"), (False, "forge")])
async def test_probe_in_ui_mode_and_with_api_auth(
    a1111_server_factory: ServerFactory,
    a1111_backend_factory: AdapterFactory,
    webui: bool,
    shape: str,
) -> None:
    server = await a1111_server_factory(webui=webui, api_auth="fleet:secret", error_shape=shape)
    probe = await a1111_backend_factory(server.url).probe()
    assert not probe.alive and "auth" in probe.detail
    a1111 = a1111_backend_factory(server.url, auth=("fleet", "secret"))
    assert (await a1111.probe()).ready
    result = await a1111.run("auth", {"prompt": "x", "steps": 2}, ProgressLog())
    assert len(result.outputs) == 1


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n....", ("image/png", "png")),
        (b"\xff\xd8\xff\xe0....", ("image/jpeg", "jpg")),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", ("image/webp", "webp")),
        (b"GIF89a", ("image/gif", "gif")),
        (b"\x00\x01", ("application/octet-stream", "bin")),
    ],
)
def test_content_type_from_magic_bytes(data: bytes, expected: tuple[str, str]) -> None:
    assert sniff(data) == expected


async def test_body_with_non_json_values_is_rejected(
    a1111: A1111Backend, a1111_server: FakeA1111
) -> None:
    with pytest.raises(JobRejected):
        await a1111.run("nan", {"prompt": "x", "cfg_scale": float("nan")}, ProgressLog())
    assert _tasks(a1111_server) == []


async def test_a_checkpoint_load_shows_as_starting(
    a1111_server_factory: ServerFactory, a1111_backend_factory: AdapterFactory
) -> None:
    server = await a1111_server_factory(
        models=("v1-5-pruned-emaonly.safetensors [6ce0161689]", "xl.safetensors [31e35c80fc]"),
        model_load_s=0.3,
    )
    progress = ProgressLog()
    body = {"prompt": "x", "steps": 2, "override_settings": {"sd_model_checkpoint": "xl"}}
    result = await a1111_backend_factory(server.url).run("load", body, progress)
    assert result.details["info"]["sd_model_name"] == "xl"
    assert "starting" in progress.texts
    assert progress.texts.index("starting") < progress.texts.index("done")
    assert server.state()["model_loads"] == 1
