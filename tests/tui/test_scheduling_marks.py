"""What the dashboard shows of scheduling: a queued job's ETA in its detail, each GPU's warm
model and its count of model loads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fleetq import AsyncClient
from tests.tui.dash_helpers import comfy_graph, first_snapshot, gpu_record, wait_until
from tests.tui.test_actions import MakeApp
from tui.screens.detail import JobDetailScreen
from tui.screens.gpu_detail import GpuDetailScreen

Publish = Callable[..., Awaitable[None]]


def detail_overview(app: Any) -> str:
    screen = app.screen
    return screen.view.section_text("overview") if isinstance(screen, JobDetailScreen) else ""


async def test_the_job_detail_gives_a_queued_jobs_eta(
    make_app: MakeApp, aclient: AsyncClient, publish: Publish
) -> None:
    job = await aclient.submit(comfy_graph(1))
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        app.main_screen._open(job.id)
        await wait_until(
            pilot,
            lambda: "eta          none: no live GPU can run it now" in detail_overview(app),
            "no ETA without a GPU",
        )
        await publish("gpu-host-1", [gpu_record(0, job={"id": "other", "service": "comfyui"})])
        # One busy GPU, nothing ahead, no run on record: half the default run time away.
        line = (
            "eta          starts in ~5s, done in ~15s  (0 ahead on 1 GPU, 1 busy, 10s a run, "
            "a guess: none on record)"
        )
        await wait_until(pilot, lambda: line in detail_overview(app), "the ETA")


async def test_the_gpus_show_their_warm_model_and_model_loads(
    make_app: MakeApp, publish: Publish
) -> None:
    warm = gpu_record(0, warm_model="flux1-dev.safetensors", model_loads=3,
                      job={"id": "0123456789abcdef", "service": "comfyui"})  # fmt: skip
    cold = gpu_record(1, warm_model=None, model_loads=0)
    await publish("gpu-host-1", [warm, cold])
    app = make_app()
    async with app.run_test(size=(200, 50)) as pilot:
        await first_snapshot(pilot)
        gpus = app.main_screen.gpus
        assert gpus.get_cell("gpu-host-1:0", "state").plain == "busy · flux1-dev"
        assert gpus.get_cell("gpu-host-1:1", "state").plain == "idle"
        assert gpus.get_cell("gpu-host-1", "job").plain == "1/2 busy · 3 model loads"
        await pilot.press("3")
        gpus.move_cursor(row=gpus.get_row_index("gpu-host-1:0"))
        await pilot.pause()
        assert "warm model: flux1-dev.safetensors, 3 model loads" in str(gpus.border_subtitle)
        await pilot.press("g")
        await wait_until(pilot, lambda: isinstance(app.screen, GpuDetailScreen), "the GPU view")
        assert isinstance(app.screen, GpuDetailScreen)
        text = str(app.screen.body.render())
        assert (
            "warm model: flux1-dev.safetensors  (3 model loads since its supervisor started)"
            in text
        )
