"""The job timeline shows the cancels and retries operators made, with who asked."""

from __future__ import annotations

from fleetq import AsyncClient, JobError
from fleetq.model import FaultKind
from fleetq.worker import WorkerQueue
from tests.tui.dash_helpers import actions_done, comfy_graph, first_snapshot, wait_until
from tests.tui.test_actions import MakeApp, select_job
from tui.app import FleetqApp
from tui.operator import operator_identity
from tui.screens.confirm import ConfirmKill
from tui.screens.detail import JobDetailScreen


def timeline_of(app: FleetqApp) -> str:
    screen = app.screen
    return screen.view.section_text("timeline") if isinstance(screen, JobDetailScreen) else ""


async def test_timeline_lists_operator_retries_and_cancels(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue
) -> None:
    job = await aclient.submit(comfy_graph())
    claimed = await worker.try_claim(["comfyui"], "gpu-host-1", 0)
    assert claimed.job is not None
    await worker.fail(claimed.job, FaultKind.FINAL, JobError("ValueError", "bad ckpt"))
    await aclient.retry(job.id)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        select_job(app, job.id)
        await pilot.press("plus")  # bumped, then killed from the dashboard, once requeued
        await actions_done(app)
        await pilot.press("k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmKill), "the confirmation")
        await pilot.press("y")
        await actions_done(app)
        app.main_screen._open(job.id)
        who = operator_identity()  # tui:user@host of whoever runs the dashboard
        assert who.startswith("tui:") and "@" in who
        await wait_until(pilot, lambda: f"cancelled by {who}" in timeline_of(app), "the cancel")
        lines = timeline_of(app).splitlines()
        bumped = next(i for i, line in enumerate(lines) if "priority changed 0 -> 1" in line)
        assert f"by {who}" in lines[bumped]
        retried = next(i for i, line in enumerate(lines) if "retried" in line)
        failed = next(i for i, line in enumerate(lines) if "ended: failed" in line)
        cancelled = next(i for i, line in enumerate(lines) if f"cancelled by {who}" in line)
        assert failed < retried < bumped < cancelled
