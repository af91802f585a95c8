"""What the dashboard shows of scheduling: a queued job's ETA in its detail, each GPU's warm
model and its count of model loads, and the queued jobs no live machine can run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fleetq import AsyncClient
from fleetq.requirements import Capabilities
from fleetq.schedulable import capabilities_document
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


FLUX = "flux1-dev.safetensors"
SDXL = "sd_xl_base_1.0.safetensors"
NODES = ("CheckpointLoaderSimple", "EmptyLatentImage", "KSampler", "SaveImage")


async def publish_machine(
    aclient: AsyncClient, publish: Publish, host: str, *checkpoints: str
) -> str:
    """Publish a one-GPU machine offering ``checkpoints``, as a supervisor does: the GPU
    record names the digest of its capabilities, stored once under that digest."""
    offer = Capabilities.make(nodes=NODES, models={"checkpoints": checkpoints})
    digest, body = capabilities_document(offer)
    store = aclient.store
    await store.command("set", store.keys.capabilities(digest), body, px=60_000)
    await publish(host, [gpu_record(0, capabilities={"comfyui": digest})])
    return digest


def cell(app: Any, job_id: str, column: str) -> Any:
    jobs = app.main_screen.jobs
    return jobs.get_cell(job_id, column) if job_id in jobs.jobs else None


def plain(app: Any, job_id: str, column: str) -> str:
    found = cell(app, job_id, column)
    return "" if found is None else found.plain


async def test_a_job_no_live_machine_can_run_is_marked_until_one_can(
    make_app: MakeApp, aclient: AsyncClient, publish: Publish
) -> None:
    await publish_machine(aclient, publish, "gpu-host-1", SDXL)
    stuck = await aclient.submit(comfy_graph(1, ckpt=FLUX))
    runnable = await aclient.submit(comfy_graph(2, ckpt=SDXL))
    app = make_app()
    async with app.run_test(size=(180, 48)) as pilot:
        await first_snapshot(pilot)
        await wait_until(pilot, lambda: plain(app, stuck.id, "state") == "unrunnable", "the mark")
        state = cell(app, stuck.id, "state")
        assert state is not None and str(state.style) == "bold yellow"
        assert plain(app, runnable.id, "state") == "queued"
        assert plain(app, stuck.id, "progress") == f"position 0 (next)  needs checkpoint {FLUX}"
        assert plain(app, runnable.id, "progress") == "position 1"
        assert "· 1 unrunnable" in str(app.main_screen.jobs.border_title)

        app.main_screen._open(stuck.id)
        why = f"runs on      no live machine: needs checkpoint {FLUX}"
        await wait_until(pilot, lambda: why in detail_overview(app), "the reason in the detail")
        assert "state        unrunnable" in detail_overview(app)

        # A machine with the checkpoint comes up: the job can run, the marks go.
        await publish_machine(aclient, publish, "gpu-host-2", FLUX)
        await wait_until(
            pilot,
            lambda: "state        queued" in detail_overview(app),
            "the detail without the mark",
        )
        assert "runs on" not in detail_overview(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: plain(app, stuck.id, "state") == "queued", "no mark")
        assert plain(app, stuck.id, "progress") == "position 0 (next)"
        assert "unrunnable" not in str(app.main_screen.jobs.border_title)


async def test_without_any_live_machine_of_the_service_the_mark_says_so(
    make_app: MakeApp, aclient: AsyncClient
) -> None:
    job = await aclient.submit(comfy_graph(1, ckpt=FLUX))
    app = make_app()
    async with app.run_test(size=(180, 48)) as pilot:
        await first_snapshot(pilot)
        await wait_until(pilot, lambda: plain(app, job.id, "state") == "unrunnable", "the mark")
        assert plain(app, job.id, "progress").endswith("no live machine runs service comfyui")
        app.main_screen._open(job.id)
        why = "runs on      no live machine runs service comfyui  (it stays queued"
        await wait_until(pilot, lambda: why in detail_overview(app), "the reason in the detail")
