"""Fake AUTOMATIC1111: progress formula, FIFO lock, interrupt/skip, errors, modes, hooks."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import aiohttp
import pytest
from fakes_testkit import png_chunks, png_pixels

from supervisor.sim.png import encode_solid_png

INFO_KEYS = [
    "prompt", "all_prompts", "negative_prompt", "all_negative_prompts", "seed", "all_seeds",
    "subseed", "all_subseeds", "subseed_strength", "width", "height", "sampler_name",
    "cfg_scale", "steps", "batch_size", "restore_faces", "face_restoration_model",
    "sd_model_name", "sd_model_hash", "sd_vae_name", "sd_vae_hash", "seed_resize_from_w",
    "seed_resize_from_h", "denoising_strength", "extra_generation_params",
    "index_of_first_image", "infotexts", "styles", "job_timestamp", "clip_skip",
    "is_using_inpainting_conditioning", "version",
]  # fmt: skip
SMALL = {"width": 64, "height": 64}


async def txt2img(http, server, **body) -> tuple[int, dict]:
    async with http.post(server.url + "/sdapi/v1/txt2img", json={**SMALL, **body}) as response:
        return response.status, await response.json()


def start(http, server, **body) -> asyncio.Task:
    return asyncio.create_task(txt2img(http, server, **body))


async def progress(http, server) -> dict:
    async with http.get(server.url + "/sdapi/v1/progress?skip_current_image=true") as response:
        assert response.status == 200
        result: dict = await response.json()
        return result


def expected_progress(state: dict) -> float:
    """The reference formula."""
    job_count, job_no = state["job_count"], state["job_no"]
    step, steps = state["sampling_step"], state["sampling_steps"]
    return min(0.01 + job_no / job_count + step / (steps * job_count), 1)


async def test_idle_progress_shape(http, a1111):
    assert await progress(http, a1111) == {
        "progress": 0.0,
        "eta_relative": 0.0,
        "state": {
            "skipped": False,
            "interrupted": False,
            "stopping_generation": False,
            "job": "",
            "job_count": 0,
            "job_timestamp": "0",
            "job_no": 0,
            "sampling_step": 0,
            "sampling_steps": 0,
        },
        "current_image": None,
        "textinfo": None,
    }


async def test_progress_formula_and_skip(http, a1111):
    job = start(http, a1111, prompt="a cat fleetq:hang", steps=4, n_iter=2)
    await a1111.wait_until(lambda s: s.sampling_step == 3)
    before = time.time()
    report = await progress(http, a1111)
    after = time.time()
    state = report["state"]
    assert (state["job"], state["job_count"], state["job_no"]) == ("Batch 1 out of 2", 2, 0)
    assert (state["sampling_step"], state["sampling_steps"]) == (3, 4)
    assert report["progress"] == pytest.approx(expected_progress(state)) == pytest.approx(0.385)
    time_start = a1111.state()["time_start"]
    factor = 1 / report["progress"] - 1
    assert (before - time_start) * factor <= report["eta_relative"] + 1e-6
    assert report["eta_relative"] <= (after - time_start) * factor + 1e-6

    async with http.post(a1111.url + "/sdapi/v1/skip") as response:
        assert await response.json() is None
    await a1111.wait_until(lambda s: s.job_no == 1 and s.sampling_step == 3)
    report = await progress(http, a1111)
    assert report["progress"] == pytest.approx(0.01 + 1 / 2 + 3 / 8)

    async with http.post(a1111.url + "/sdapi/v1/interrupt") as response:
        assert await response.json() == {}
    status, body = await job
    assert status == 200 and len(body["images"]) == 2  # skipped batch + interrupted batch
    idle = await progress(http, a1111)
    assert (idle["progress"], idle["eta_relative"], idle["state"]["job"]) == (0.0, 0.0, "")
    assert idle["state"]["job_count"] == 0 and idle["state"]["interrupted"] is True


async def test_job_count_is_minus_one_before_sampling_starts(http, a1111):
    """``state.begin`` sets job_count -1; the formula then stays at 0.01."""
    a1111.shared_state.begin("scripts_txt2img")
    a1111.shared_state.update(sampling_steps=20)
    report = await progress(http, a1111)
    assert report["state"]["job_count"] == -1 and report["progress"] == pytest.approx(0.01)
    a1111.shared_state.end()


async def test_success_response_shape(http, a1111):
    status, body = await txt2img(
        http, a1111, prompt="a cat", negative_prompt="dog", seed=1234, steps=3, batch_size=2
    )
    assert status == 200
    assert list(body) == ["images", "parameters", "info"]
    assert isinstance(body["info"], str)
    info = json.loads(body["info"])
    assert list(info) == INFO_KEYS
    assert info["all_seeds"] == [1234, 1235] and info["seed"] == 1234
    assert info["sampler_name"] == "Euler" and info["steps"] == 3
    assert info["sd_model_name"] == "v1-5-pruned-emaonly" and info["version"] == "v1.10.1"
    assert info["index_of_first_image"] == 0 and len(info["infotexts"]) == 2
    assert info["infotexts"][0].startswith("a cat\nNegative prompt: dog\nSteps: 3, Sampler: Euler")
    assert body["parameters"]["prompt"] == "a cat"
    assert body["parameters"]["sampler_name"] is None  # the request, echoed as sent
    assert body["parameters"]["send_images"] is True and "alwayson_scripts" in body["parameters"]
    for encoded, text in zip(body["images"], info["infotexts"], strict=True):
        png = base64.b64decode(encoded)
        assert png_pixels(png)[:2] == (64, 64)
        chunks = dict(png_chunks(png))
        assert chunks[b"tEXt"] == b"parameters\x00" + text.encode("latin-1")


async def test_grid_comes_first_when_saving_several_images(http, a1111):
    status, body = await txt2img(http, a1111, prompt="x", steps=1, batch_size=2, save_images=True)
    info = json.loads(body["info"])
    assert len(body["images"]) == 3 and info["index_of_first_image"] == 1
    assert png_pixels(base64.b64decode(body["images"][0]))[:2] == (128, 64)
    status, body = await txt2img(http, a1111, prompt="x", steps=1, send_images=False)
    assert status == 200 and body["images"] == []


async def test_requests_queue_on_one_fifo_lock(http, a1111):
    first = start(http, a1111, prompt="fleetq:hang", steps=2, force_task_id="A")
    await a1111.wait_until(lambda s: s.sampling_step == 1)
    second = start(http, a1111, prompt="b", steps=2, force_task_id="B")
    await a1111.wait_until(lambda s: a1111.waiting == 1)
    third = start(http, a1111, prompt="c", steps=2, force_task_id="C")
    await a1111.wait_until(lambda s: a1111.waiting == 2)
    state = a1111.state()
    assert state["busy"] and state["current_task"] == "A"
    assert state["pending_tasks"] == ["B", "C"]
    assert not second.done() and not third.done()

    async with http.post(a1111.url + "/sdapi/v1/interrupt"):
        pass
    results = await asyncio.gather(first, second, third)
    assert [status for status, _ in results] == [200, 200, 200]
    assert a1111.state()["finished_tasks"] == ["A", "B", "C"]
    # The interrupt hit A only: B and C ran all their steps.
    assert [json.loads(body["info"])["prompt"] for _, body in results] == ["fleetq:hang", "b", "c"]


async def test_interrupt_returns_partial_images_and_skips_later_batches(http, a1111):
    job = start(http, a1111, prompt="fleetq:hang", steps=10, n_iter=3, seed=5)
    await a1111.wait_until(lambda s: s.sampling_step == 9)
    async with http.post(a1111.url + "/sdapi/v1/interrupt") as response:
        assert response.status == 200
    status, body = await job
    assert status == 200
    assert len(body["images"]) == 1
    assert png_pixels(base64.b64decode(body["images"][0]))[:2] == (64, 64)
    info = json.loads(body["info"])
    assert len(info["all_seeds"]) == 3 and len(info["infotexts"]) == 1


async def test_interrupt_while_idle_is_lost(http, a1111):
    async with http.post(a1111.url + "/sdapi/v1/interrupt"):
        pass
    status, body = await txt2img(http, a1111, prompt="x", steps=3)
    assert status == 200 and len(body["images"]) == 1
    assert (await progress(http, a1111))["state"]["interrupted"] is False


@pytest.mark.parametrize(
    ("marker", "error", "message"),
    [
        ("fleetq:fail", "RuntimeError", "fleetq:fail requested by the prompt"),
        ("fleetq:oom", "OutOfMemoryError", "CUDA out of memory."),
    ],
)
async def test_failures_in_the_a1111_shape(http, a1111, marker, error, message):
    async with http.post(
        a1111.url + "/sdapi/v1/txt2img", json={"prompt": f"x {marker}", "steps": 4}
    ) as response:
        assert response.status == 500
        assert "X-Process-Time" in response.headers
        body = await response.json()
    assert list(body) == ["error", "detail", "body", "errors"]
    assert (body["error"], body["detail"], body["body"]) == (error, "", "")
    assert body["errors"].startswith(message)
    # The lock is free again and the progress is idle.
    assert (await progress(http, a1111))["state"]["job_count"] == 0
    status, _ = await txt2img(http, a1111, prompt="ok", steps=1)
    assert status == 200


async def test_failures_in_the_forge_shape(http, a1111_factory):
    forge = await a1111_factory(error_shape="forge")
    async with http.post(
        forge.url + "/sdapi/v1/txt2img", json={"prompt": "fleetq:oom", "steps": 2}
    ) as response:
        assert response.status == 500
        body = await response.json()
        assert "X-Process-Time" not in response.headers
    assert list(body) == ["error", "detail", "body", "message"]  # webui.py _handle_exception
    assert (body["error"], body["detail"], body["body"]) == ("OutOfMemoryError", "", "")
    assert body["message"].startswith("CUDA out of memory")
    legacy = await a1111_factory(error_shape="forge-legacy")
    async with http.post(
        legacy.url + "/sdapi/v1/txt2img", json={"prompt": "fleetq:fail", "steps": 2}
    ) as response:
        assert response.status == 500
        assert response.content_type == "text/plain"
        assert await response.text() == "Internal Server Error"
    async with http.post(
        forge.url + "/sdapi/v1/txt2img", json={"sampler_name": "nope"}
    ) as response:
        assert response.status == 400
        assert await response.json() == {"detail": "Sampler not found"}


async def test_request_errors(http, a1111):
    async with http.post(a1111.url + "/sdapi/v1/txt2img", json={"sampler_name": "nope"}) as r:
        assert r.status == 400
        assert await r.json() == {
            "error": "HTTPException",
            "detail": "Sampler not found",
            "body": "",
            "errors": "400: Sampler not found",
        }
    async with http.post(a1111.url + "/sdapi/v1/txt2img", json={"steps": "many"}) as r:
        assert r.status == 422
        assert await r.json() == {
            "detail": [
                {"loc": ["body", "steps"], "msg": "value is not a valid integer",
                 "type": "type_error.integer"}
            ]
        }  # fmt: skip
    async with http.post(a1111.url + "/sdapi/v1/txt2img", data=b"{oops") as r:
        assert r.status == 422
        assert (await r.json())["detail"][0]["type"] == "value_error.jsondecode"
    async with http.post(a1111.url + "/sdapi/v1/img2img", json={"prompt": "x"}) as r:
        assert r.status == 404
        assert (await r.json())["detail"] == "Init image not found"
    async with http.get(a1111.url + "/sdapi/v1/nothing") as r:
        assert r.status == 404 and await r.json() == {"detail": "Not Found"}
    async with http.get(a1111.url + "/sdapi/v1/txt2img") as r:
        assert r.status == 405 and await r.json() == {"detail": "Method Not Allowed"}


async def test_legacy_sampler_names_and_aliases(http, a1111):
    _, body = await txt2img(http, a1111, sampler_name="DPM++ 2M Karras", steps=1)
    info = json.loads(body["info"])
    assert (info["sampler_name"], info["extra_generation_params"]) == (
        "DPM++ 2M",
        {"Schedule type": "Karras"},
    )
    _status, body = await txt2img(http, a1111, sampler_index="k_euler_a", steps=1)
    assert json.loads(body["info"])["sampler_name"] == "Euler a"


async def test_img2img(http, a1111):
    init = base64.b64encode(encode_solid_png(8, 8, (1, 2, 3))).decode()
    body = {"prompt": "x", "steps": 20, "init_images": [init], **SMALL}
    async with http.post(a1111.url + "/sdapi/v1/img2img", json=body) as response:
        assert response.status == 200
        result = await response.json()
    assert result["parameters"]["init_images"] is None  # include_init_images is false
    info = json.loads(result["info"])
    assert info["denoising_strength"] == 0.75
    state = a1111.state()["shared_state"]
    assert state["job"] == ""
    # setup_img2img_steps: int(0.75 * 20) + 1 steps are sampled, not 20.
    assert state["sampling_steps"] == 16


@pytest.mark.parametrize(
    ("init_images", "status", "message"),
    [
        (["bm90IGFuIGltYWdl"], 500, "Invalid encoded image"),
        (["https://example.invalid/cat.png"], 500, "Invalid image url"),
        ([], 500, "bad number of images passed: 0; expecting 1 or less"),
        (None, 404, "Init image not found"),
    ],
)
async def test_img2img_image_errors(http, a1111, init_images, status, message):
    body = {"prompt": "x", "steps": 2, "init_images": init_images}
    async with http.post(a1111.url + "/sdapi/v1/img2img", json=body) as response:
        assert response.status == status
        error = await response.json()
    assert message in (error["detail"] or error["errors"])


async def test_masks_and_controlnet_detect_maps_follow_the_images(http, a1111):
    png = base64.b64encode(encode_solid_png(8, 8, (9, 9, 9))).decode()
    unit = {"enabled": True, "module": "canny", "model": "control_canny"}
    body = {
        "prompt": "x", "steps": 1, "batch_size": 2, "init_images": [png], "mask": png,
        "override_settings": {"return_mask": True},
        "alwayson_scripts": {"ControlNet": {"args": [unit, {**unit, "enabled": False}]}},
        **SMALL,
    }  # fmt: skip
    async with http.post(a1111.url + "/sdapi/v1/img2img", json=body) as response:
        result = await response.json()
    info = json.loads(result["info"])
    # Two images, then the mask, then one detect map (the disabled unit has none).
    assert len(result["images"]) == 4 and len(info["all_seeds"]) == 2
    assert info["index_of_first_image"] == 0
    rows = [png_pixels(base64.b64decode(image))[2] for image in result["images"][2:]]
    assert [row[1:4] for row in rows] == [b"\xff\xff\xff", b"\x00\x00\x00"]


async def test_hires_fix_doubles_the_job_count(http, a1111_factory):
    server = await a1111_factory(step_seconds=0.1)
    job = start(http, server, prompt="x", steps=2, enable_hr=True, hr_second_pass_steps=3)
    await server.wait_until(lambda s: s.job_no == 1 and s.sampling_step == 1)
    state = (await progress(http, server))["state"]
    assert (state["job_count"], state["sampling_steps"]) == (2, 3)  # one image, two passes
    status, body = await job
    assert status == 200 and json.loads(body["info"])["width"] == 128
    status, body = await txt2img(http, server, steps=1, enable_hr=True, hr_upscaler="Nope")
    assert status == 500 and body["errors"] == "could not find upscaler named Nope"


async def test_sampling_step_counts_finished_steps(http, a1111_factory):
    server = await a1111_factory(step_seconds=0.2)
    job = start(http, server, prompt="x", steps=3)
    await server.wait_until(lambda s: s.job_count == 1)
    assert (await progress(http, server))["state"]["sampling_step"] == 0  # step 1 running
    await server.wait_until(lambda s: s.sampling_step == 1)
    assert (await progress(http, server))["state"]["sampling_step"] == 1
    status, _ = await job
    assert status == 200


async def test_override_checkpoint_switch_and_silent_fallback(http, a1111_factory):
    server = await a1111_factory(
        models=("v1-5-pruned-emaonly.safetensors [6ce0161689]", "sdxl.safetensors [31e35c80fc]"),
        model_load_s=0.3,
    )
    first = start(http, server, prompt="x", steps=1)
    # The first use of a checkpoint loads it: lock held, job_count -1, no steps.
    await server.wait_until(lambda s: s.job_count == -1)
    assert server.lock.locked() and server.state()["loaded_model"] is None
    assert (await progress(http, server))["state"]["sampling_steps"] == 0
    _, body = await first
    assert json.loads(body["info"])["sd_model_name"] == "v1-5-pruned-emaonly"
    assert server.state()["model_loads"] == 1
    _, body = await txt2img(http, server, steps=1)  # same checkpoint: no load
    assert server.state()["model_loads"] == 1
    sdxl = {"sd_model_checkpoint": "sdxl.safetensors [31e35c80fc]"}
    _, body = await txt2img(http, server, steps=1, override_settings=sdxl)
    assert json.loads(body["info"])["sd_model_hash"] == "31e35c80fc"
    assert server.state()["model_loads"] == 2
    assert server.state()["loaded_model"] == "sdxl.safetensors [31e35c80fc]"
    # An unknown checkpoint is dropped silently: the job runs on the selected one.
    missing = {"sd_model_checkpoint": "missing.safetensors"}
    status, body = await txt2img(http, server, steps=1, override_settings=missing)
    assert status == 200 and json.loads(body["info"])["sd_model_name"] == "v1-5-pruned-emaonly"
    assert server.state()["model_loads"] == 3
    # Without restoring afterwards the override stays selected for later jobs.
    await txt2img(http, server, steps=1, override_settings=sdxl,
                  override_settings_restore_afterwards=False)  # fmt: skip
    _, body = await txt2img(http, server, steps=1)
    assert json.loads(body["info"])["sd_model_name"] == "sdxl"
    assert server.state()["model"] == "sdxl.safetensors [31e35c80fc]"


def test_model_load_time_is_a_cli_flag():
    from supervisor.sim.a1111.cli import build_parser

    args = build_parser().parse_args(["--model-load-seconds", "2.5"])
    assert args.model_load_seconds == 2.5


async def test_nowebui_mode_has_no_internal_routes(http, a1111):
    for method, path in (("GET", "/internal/ping"), ("POST", "/internal/progress"), ("GET", "/")):
        async with http.request(method, a1111.url + path, json={}) as response:
            assert response.status == 404


async def test_webui_mode_internal_progress(http, a1111_factory):
    ui = await a1111_factory(webui=True)
    async with http.get(ui.url + "/internal/ping") as response:
        assert await response.json() == {}

    async def task_progress(task_id: str) -> dict:
        body = {"id_task": task_id, "id_live_preview": -1, "live_preview": False}
        async with http.post(ui.url + "/internal/progress", json=body) as response:
            result: dict = await response.json()
            return result

    first = start(http, ui, prompt="fleetq:hang", steps=4, force_task_id="task(one)")
    await ui.wait_until(lambda s: s.sampling_step == 3)
    second = start(http, ui, prompt="x", steps=1, force_task_id="task(two)")
    await ui.wait_until(lambda s: ui.waiting == 1)

    active = await task_progress("task(one)")
    assert (active["active"], active["queued"], active["completed"]) == (True, False, False)
    assert active["progress"] == pytest.approx(3 / 4)
    queued = await task_progress("task(two)")
    assert queued == {
        "active": False,
        "queued": True,
        "completed": False,
        "progress": None,
        "eta": None,
        "live_preview": None,
        "id_live_preview": -1,
        "textinfo": "In queue: 1/1",
    }
    assert (await task_progress("task(unknown)"))["textinfo"] == "Waiting..."
    async with http.post(ui.url + "/sdapi/v1/interrupt"):
        pass
    await asyncio.gather(first, second)
    assert (await task_progress("task(one)"))["completed"] is True


async def test_failed_task_stays_active_until_the_next_one(http, a1111_factory):
    ui = await a1111_factory(webui=True)
    body = {"prompt": "fleetq:fail", "steps": 2, "force_task_id": "task(bad)"}
    async with http.post(ui.url + "/sdapi/v1/txt2img", json=body) as response:
        assert response.status == 500
    async with http.post(ui.url + "/internal/progress", json={"id_task": "task(bad)"}) as r:
        assert (await r.json())["active"] is True


async def test_models_and_options(http, a1111_factory):
    server = await a1111_factory(
        models=("v1-5-pruned-emaonly.safetensors [6ce0161689]", "sdxl.safetensors [31e35c80fc]")
    )
    async with http.get(server.url + "/sdapi/v1/sd-models") as response:
        models = await response.json()
    assert [m["title"] for m in models] == [
        "v1-5-pruned-emaonly.safetensors [6ce0161689]",
        "sdxl.safetensors [31e35c80fc]",
    ]
    assert list(models[0]) == ["title", "model_name", "hash", "sha256", "filename", "config"]
    async with http.get(server.url + "/sdapi/v1/options") as response:
        options = await response.json()
    assert options["sd_model_checkpoint"] == models[0]["title"]
    async with http.post(
        server.url + "/sdapi/v1/options", json={"sd_model_checkpoint": "sdxl"}
    ) as response:
        assert response.status == 200 and await response.json() is None
    _status, body = await txt2img(http, server, steps=1)
    assert json.loads(body["info"])["sd_model_name"] == "sdxl"
    async with http.post(
        server.url + "/sdapi/v1/options", json={"sd_model_checkpoint": "missing"}
    ) as response:
        assert response.status == 500
        assert (await response.json())["errors"] == "model 'missing' not found"
    async with http.get(server.url + "/sdapi/v1/samplers") as response:
        assert "Euler a" in [sampler["name"] for sampler in await response.json()]


async def test_basic_auth(http, a1111_factory):
    server = await a1111_factory(api_auth="user:secret")
    async with http.get(server.url + "/sdapi/v1/progress") as response:
        assert response.status == 401
        assert (await response.json())["detail"] == "Not authenticated"
    auth = {"Authorization": "Basic " + base64.b64encode(b"user:secret").decode()}
    async with http.get(server.url + "/sdapi/v1/progress", headers=auth) as response:
        assert response.status == 200
    wrong = {"Authorization": "Basic " + base64.b64encode(b"user:nope").decode()}
    async with http.get(server.url + "/sdapi/v1/options", headers=wrong) as response:
        assert response.status == 401
    forge = await a1111_factory(api_auth="user:secret", error_shape="forge")
    async with http.get(forge.url + "/sdapi/v1/progress") as response:
        assert response.status == 401  # Forge main authenticates progress too


async def test_restart_cuts_off_open_requests(http, a1111):
    job = start(http, a1111, prompt="fleetq:hang", steps=2)
    await a1111.wait_until(lambda s: s.sampling_step == 1)
    async with http.post(a1111.url + "/fake/restart", json={"delay_s": 0}) as response:
        assert response.status == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await job
    await a1111.wait_ready()
    state = a1111.state()
    assert state["restarts"] == 1 and not state["busy"] and state["current_task"] is None
    assert (await progress(http, a1111))["state"]["job_timestamp"] == "0"
    status, _ = await txt2img(http, a1111, steps=1)
    assert status == 200


async def test_config_and_slow_start(http, a1111_factory):
    server = await a1111_factory(startup_delay_s=0.3, startup_mode="503")
    async with http.get(server.url + "/sdapi/v1/progress") as response:
        assert response.status == 503
    await server.wait_ready(timeout_s=5)
    async with http.post(server.url + "/fake/config", json={"error_shape": "forge"}) as response:
        assert (await response.json())["error_shape"] == "forge"
    async with http.post(server.url + "/fake/config", json={"webui": True}) as response:
        assert response.status == 400  # fixed at start
    async with http.get(server.url + "/fake/state") as response:
        assert (await response.json())["options"]["error_shape"] == "forge"
