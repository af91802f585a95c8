"""The dashboard against a live fleet: refreshes in place, filters, offline machines, N/A
readings, the job detail, the Redis-down banner and reconnect, and a clean quit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from fleetq import AsyncClient, Client, JobError, Settings
from fleetq.demo.embedded import RedisServer, free_port
from fleetq.model import FaultKind, Output
from fleetq.worker import WorkerQueue
from tests.tui.dash_helpers import (
    comfy_graph,
    eventually,
    first_snapshot,
    fresh,
    gpu_record,
    wait_until,
)
from tui.app import FleetqApp, create_app
from tui.demo import demo_app
from tui.screens.detail import JobDetailScreen
from tui.source import PAGE_SIZE, StaticSource

MakeApp = Callable[..., FleetqApp]
Publish = Callable[..., Awaitable[None]]


def row_keys(app: FleetqApp) -> list[str]:
    return [str(r.key.value) for r in app.main_screen.jobs.ordered_rows]


async def test_rows_update_in_place_and_the_cursor_stays_on_its_job(
    make_app: MakeApp, aclient: AsyncClient
) -> None:
    ids = [(await aclient.submit(comfy_graph(i))).id for i in range(5)]
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        table = app.main_screen.jobs
        table.move_cursor(row=2)
        watched = ids[2]
        assert table.cursor_key == watched

        # Someone else (the CLI) bumps a job below the cursor to the top.
        await aclient.bump(ids[4], 7)
        await fresh(pilot)
        assert row_keys(app) == [ids[4], ids[0], ids[1], ids[2], ids[3]]
        assert table.cursor_key == watched
        assert table.cursor_row == 3

        # A job above the cursor leaves (cancelled): the cursor still follows its job.
        await aclient.cancel(ids[0])
        await fresh(pilot)
        assert ids[0] not in table.rows
        assert table.cursor_key == watched

        # A new job arrives: it is added, nothing else is re-added.
        new = (await aclient.submit(comfy_graph(9), priority=3)).id
        await fresh(pilot)
        assert row_keys(app) == [ids[4], new, ids[1], ids[2], ids[3]]
        assert table.cursor_key == watched


async def test_filters_by_state_and_service(make_app: MakeApp, aclient: AsyncClient) -> None:
    comfy = (await aclient.submit(comfy_graph())).id
    a1111 = (await aclient.submit({"prompt": "a fox", "steps": 20}, service="a1111")).id
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        assert set(row_keys(app)) == {comfy, a1111}
        await pilot.press("v")  # all -> comfyui
        await wait_until(pilot, lambda: row_keys(app) == [comfy], "comfyui only")
        assert "comfyui" in str(app.main_screen.jobs.border_title)
        await pilot.press("v")  # comfyui -> a1111
        await wait_until(pilot, lambda: row_keys(app) == [a1111], "a1111 only")
        await pilot.press("s")  # active -> queued
        await wait_until(pilot, lambda: app.main_screen.snapshot.job_filter.state == "queued",  # type: ignore[union-attr]
                         "the queued filter")  # fmt: skip
        assert row_keys(app) == [a1111]
        await pilot.press("s")  # queued -> running
        await wait_until(pilot, lambda: row_keys(app) == [], "no running jobs")


async def test_running_job_shows_progress_and_its_gpu(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue, publish: Publish
) -> None:
    job = await aclient.submit(comfy_graph())
    claimed = (await worker.try_claim(["comfyui"], "gpu-host-1", 1)).job
    assert claimed is not None
    await worker.renew(claimed, progress=0.5, progress_text="KSampler 10/20")
    gpu_job = {"id": job.id, "service": "comfyui", "progress": 0.5, "progress_text": "x"}
    await publish("gpu-host-1", [gpu_record(0), gpu_record(1, util=97, job=gpu_job)])
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        jobs, gpus = app.main_screen.jobs, app.main_screen.gpus
        assert jobs.get_cell(job.id, "where").plain == "gpu-host-1:1"
        progress = jobs.get_cell(job.id, "progress").plain
        assert "50%" in progress and "KSampler 10/20" in progress and "█" in progress
        assert job.id[:8] in gpus.get_cell("gpu-host-1:1", "job").plain
        assert gpus.get_cell("gpu-host-1:1", "util").plain.split()[0] == "97%"
        assert gpus.get_cell("gpu-host-1:0", "state").plain == "idle"


async def test_offline_machine_is_shown_offline_not_as_zeros(
    make_app: MakeApp, aclient: AsyncClient, publish: Publish
) -> None:
    await publish("gpu-host-1", [gpu_record(0, util=80), gpu_record(1, util=20)])
    await publish("gpu-host-2", [gpu_record(0)])
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        gpus = app.main_screen.gpus
        assert "up" in gpus.get_cell("gpu-host-1", "health").plain
        # The supervisor stops publishing and its records expire (deleted here, same effect).
        keys = aclient.store.keys
        await aclient.store.command("delete", keys.host("gpu-host-1"), keys.gpus("gpu-host-1"))
        await fresh(pilot)
        assert gpus.get_cell("gpu-host-1", "health").plain.startswith("OFFLINE")
        for index in (0, 1):  # the GPUs last seen there are kept, marked offline
            target = f"gpu-host-1:{index}"
            assert gpus.get_cell(target, "health").plain == "OFFLINE"
            for column in ("memory", "temp", "power"):
                assert gpus.get_cell(target, column).plain == "-"
            assert gpus.get_cell(target, "util").plain.split()[0] == "-"  # no 0%
        assert gpus.get_cell("gpu-host-2:0", "util").plain.split()[0] == "50%"
        assert "1/2 hosts" in str(app.main_screen.summary.render())


async def test_unsupported_readings_show_na(make_app: MakeApp, publish: Publish) -> None:
    readings = {"utilization_gpu_pct": None, "memory_used_mb": None, "memory_total_mb": None,
                "temperature_c": None, "power_w": None, "power_limit_w": None}  # fmt: skip
    await publish("gpu-host-1", [gpu_record(0, readings=readings, health=None)])
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        gpus = app.main_screen.gpus
        for column in ("memory", "temp", "power", "health"):
            assert gpus.get_cell("gpu-host-1:0", column).plain == "N/A", column
        assert gpus.get_cell("gpu-host-1:0", "util").plain.split()[0] == "N/A"
        assert gpus.get_cell("gpu-host-1", "util").plain == "N/A"


async def test_utilization_history_grows_one_sample_per_refresh(
    make_app: MakeApp, publish: Publish
) -> None:
    await publish("gpu-host-1", [gpu_record(0, util=10)])
    app = make_app()  # no clock: history is sampled on Redis server time
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        for util in (40, 90):
            await publish("gpu-host-1", [gpu_record(0, util=util)])
            before = len(app.main_screen.snapshot.hosts[0].gpus[0].history)  # type: ignore[union-attr]

            def grown(before: int = before) -> bool:
                snap = app.main_screen.snapshot
                return snap is not None and len(snap.hosts[0].gpus[0].history) > before

            await wait_until(pilot, grown, "one more utilization sample")
        history = app.main_screen.snapshot.hosts[0].gpus[0].history  # type: ignore[union-attr]
        assert history[-1] == 90.0 and 40.0 in history and history[0] == 10.0
        assert len(history) <= 60
        assert app.main_screen.gpus.get_cell("gpu-host-1:0", "util").plain.split()[1]


async def test_job_detail_shows_workflow_timeline_error_and_outputs(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue
) -> None:
    job = await aclient.submit(comfy_graph(ckpt="juggernautXL_v9.safetensors"), max_attempts=2)
    first = (await worker.try_claim(["comfyui"], "gpu-host-1", 0)).job
    assert first is not None
    await worker.fail(first, FaultKind.INFRA, JobError("BackendLost", "ComfyUI went away"))
    second = (await worker.try_claim(["comfyui"], "gpu-host-2", 3)).job
    assert second is not None
    await worker.complete(second, [Output("img_00001_.png", "image/png", b"\x89PNG" + b"0" * 2000)])

    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("s", "s", "s", "s")  # active -> ... -> completed
        await wait_until(pilot, lambda: job.id in app.main_screen.jobs.rows, "the completed job")
        app.main_screen.jobs.move_cursor(row=app.main_screen.jobs.get_row_index(job.id))
        app.main_screen.jobs.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "the detail")
        screen = app.screen
        assert isinstance(screen, JobDetailScreen)
        assert app.main_screen.poller.detail_id == job.id

        def section(name: str) -> str:
            return screen.view.section_text(name)

        await wait_until(pilot, lambda: "4 nodes" in section("workflow"), "the workflow")
        assert "juggernautXL_v9.safetensors" in section("workflow")
        timeline = section("timeline")
        assert "claim #1 by gpu-host-1:0" in timeline and "requeued" in timeline
        assert "claim #2 by gpu-host-2:3" in timeline and "finished: completed" in timeline
        assert "img_00001_.png" in section("outputs") and "image/png" in section("outputs")
        assert "comfyui" in section("overview")

        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.main_screen, "back to the main screen")
        assert app.main_screen.poller.detail_id is None


async def test_detail_shows_the_error_with_its_node(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue
) -> None:
    job = await aclient.submit(comfy_graph())
    claimed = (await worker.try_claim(["comfyui"], "gpu-host-1", 0)).job
    assert claimed is not None
    error = JobError("ValueError", "ckpt_name 'x' not in list", node="1")
    await worker.fail(claimed, FaultKind.FINAL, error)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        app.main_screen._open(job.id)
        await wait_until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "the detail")

        screen = app.screen
        assert isinstance(screen, JobDetailScreen)

        def error_text() -> str:
            return screen.view.section_text("error")

        await wait_until(pilot, lambda: "ValueError" in error_text(), "the error")
        assert "ckpt_name 'x' not in list" in error_text() and "node: 1" in error_text()


async def test_only_a_bounded_page_of_jobs_is_read(
    make_app: MakeApp, client: Client, settings: Settings
) -> None:
    for i in range(PAGE_SIZE + 30):
        client.submit(comfy_graph(i))
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        snap = app.main_screen.snapshot
        assert snap is not None
        assert len(snap.jobs) == PAGE_SIZE
        assert snap.jobs_total == PAGE_SIZE + 30
        assert f"{PAGE_SIZE} shown of {PAGE_SIZE + 30}" in str(app.main_screen.jobs.border_title)


async def test_redis_down_shows_a_banner_and_reconnects() -> None:
    with RedisServer() as server:
        settings = Settings(redis_url=server.url, namespace="tui-down", socket_timeout_s=2.0,
                            block_timeout_s=1.0)  # fmt: skip
        app = create_app(settings, refresh_s=0.1)
        async with app.run_test(size=(160, 48)) as pilot:
            await first_snapshot(pilot)
            banner = app.main_screen.banner
            assert not banner.down
            server.kill()
            await wait_until(pilot, lambda: banner.down, "the banner")
            assert "REDIS UNREACHABLE" in str(banner.render())
            assert app.main_screen.snapshot is not None  # the last data stays on screen
            server.start()
            await wait_until(pilot, lambda: not banner.down, "the reconnect", timeout_s=20)
            await fresh(pilot)


async def test_redis_never_reachable_shows_the_banner() -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", namespace="nowhere")
    app = create_app(settings, refresh_s=0.1)
    async with app.run_test(size=(160, 48)) as pilot:
        banner = app.main_screen.banner
        await wait_until(pilot, lambda: banner.down, "the banner")
        assert "cannot reach Redis" in str(banner.render())
        await pilot.press("q")


async def test_quit_closes_the_redis_connections(redis_url: str, settings: Settings) -> None:
    probe = aioredis.Redis.from_url(redis_url)

    async def connected() -> int:
        return int((await probe.info("clients"))["connected_clients"])

    async def connected_is(count: int) -> bool:
        return await connected() == count

    try:
        baseline = await connected()
        app = create_app(settings, refresh_s=0.1)
        async with app.run_test(size=(160, 48)) as pilot:
            await first_snapshot(pilot)
            assert await connected() > baseline
            await pilot.press("q")
        assert app.return_code == 0
        await eventually(lambda: connected_is(baseline), "the connections to close")
    finally:
        await probe.aclose()


async def test_offscreen_rows_are_brought_up_to_date_when_scrolled_into_view(
    make_app: MakeApp, client: Client, aclient: AsyncClient
) -> None:
    ids = [client.submit(comfy_graph(i)).id for i in range(60)]
    app = make_app()
    async with app.run_test(size=(160, 30)) as pilot:
        await first_snapshot(pilot)
        table = app.main_screen.jobs
        last = ids[-1]
        assert table.get_row_index(last) == 59
        await aclient.bump(last, -3)  # still last in order, but its cells change off screen
        await fresh(pilot)
        assert table.get_cell(last, "priority").plain == "0"  # off screen: not redrawn yet
        table.focus()
        table.move_cursor(row=59, animate=False)
        await pilot.pause()
        assert table.get_cell(last, "priority").plain == "-3"


async def test_ctrl_c_quits_cleanly() -> None:
    app = demo_app(refresh_s=0.1)
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")
    assert app.return_code == 0
    source = app.source
    assert isinstance(source, StaticSource) and source.closed
