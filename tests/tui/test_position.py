"""One queue-position convention everywhere: the number of jobs ahead, 0 = next (as the core,
the CLI and the gateway count it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fleetq import AsyncClient, JobError, JobState
from fleetq.model import FaultKind
from fleetq.worker import WorkerQueue
from tests.tui.dash_helpers import (
    actions_done,
    comfy_graph,
    first_snapshot,
    fresh,
    gpu_record,
    wait_until,
)
from tests.tui.test_actions import MakeApp, Notes, select_job
from tui.screens.detail import JobDetailScreen


async def test_toast_row_and_detail_agree_with_the_core(
    make_app: MakeApp,
    aclient: AsyncClient,
    worker: WorkerQueue,
    publish: Callable[..., Awaitable[None]],
) -> None:
    await publish("gpu-host-1", [gpu_record(0)])  # a live GPU able to run them: none marked
    ids = [(await aclient.submit(comfy_graph(i))).id for i in range(9)]
    failed = ids[0]
    claimed = await worker.try_claim(["comfyui"], "gpu-host-1", 0)
    assert claimed.job is not None and claimed.job.id == failed
    await worker.fail(claimed.job, FaultKind.FINAL, JobError("ValueError", "bad"))
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        last = ids[-1]
        core = (await aclient.status(last)).position
        assert core == 7
        progress = app.main_screen.jobs.get_cell(last, "progress").plain
        assert progress == "position 7"

        select_job(app, ids[4])
        await pilot.press("minus")
        await actions_done(app)
        core = (await aclient.status(ids[4])).position
        assert core == 7
        assert notes.last().endswith("now position 7")
        await fresh(pilot)
        assert app.main_screen.jobs.get_cell(ids[4], "progress").plain == "position 7"

        app.main_screen._open(ids[4])

        def detail_says(text: str) -> bool:
            screen = app.screen
            return isinstance(screen, JobDetailScreen) and text in screen.view.section_text(
                "overview"
            )

        await wait_until(pilot, lambda: detail_says("position 7 in its queue"), "the detail")
        await pilot.press("escape")

        # A retried job keeps its submit order: next in line, said the same way everywhere.
        await pilot.press("s", "s", "s")
        await wait_until(pilot, lambda: failed in app.main_screen.jobs.rows, "the failed job")
        select_job(app, failed)
        await pilot.press("r")
        await actions_done(app)
        status = await aclient.status(failed)
        assert status.state is JobState.QUEUED and status.position == 0
        assert notes.last() == f"job {failed} requeued at position 0 (next)"
        app.main_screen._open(failed)
        await wait_until(pilot, lambda: detail_says("position 0 (next) in its queue"), "the detail")
