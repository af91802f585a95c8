"""The job timeline shows the cancels, retries and priority changes operators made, with who
asked: the dashboard (``tui:user@host``) or the command line (``cli:user@host``)."""

from __future__ import annotations

import asyncio

from fleetq import AsyncClient, JobError, Settings
from fleetq.identity import operator_identity as operator_identity_of
from fleetq.model import FaultKind
from fleetq.worker import WorkerQueue
from tests.core.test_cli import fleetq
from tests.tui.dash_helpers import actions_done, comfy_graph, first_snapshot, wait_until
from tests.tui.test_actions import MakeApp, select_job
from tui.app import FleetqApp
from tui.operator import operator_identity
from tui.screens.confirm import ConfirmKill
from tui.screens.detail import JobDetailScreen
from tui.screens.priority import PriorityPrompt


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


async def test_timeline_names_who_retried_and_set_the_priority(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue, settings: Settings
) -> None:
    cli = operator_identity_of("cli")  # the command line, run by this user on this machine
    job = await aclient.submit(comfy_graph())
    for attempt in range(2):  # failed twice: retried once from the CLI, once from the dashboard
        claimed = await worker.try_claim(["comfyui"], "gpu-host-1", 0)
        assert claimed.job is not None
        await worker.fail(claimed.job, FaultKind.FINAL, JobError("ValueError", "bad ckpt"))
        if attempt == 0:
            assert (await asyncio.to_thread(fleetq, settings, "retry", job.id)).returncode == 0
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("s", "s", "s")  # active -> queued -> running -> failed
        await wait_until(pilot, lambda: job.id in app.main_screen.jobs.rows, "the failed job")
        select_job(app, job.id)
        await pilot.press("r")
        await actions_done(app)
        await pilot.press("s", "s", "s")  # failed -> completed -> cancelled -> active
        await wait_until(pilot, lambda: job.id in app.main_screen.jobs.rows, "the queued job")
        select_job(app, job.id)
        await pilot.press("P")
        await wait_until(pilot, lambda: isinstance(app.screen, PriorityPrompt), "the prompt")
        await pilot.press(*"42", "enter")
        await actions_done(app)
        done = await asyncio.to_thread(fleetq, settings, "bump", job.id, "7")
        assert done.returncode == 0
        app.main_screen._open(job.id)
        who = operator_identity()
        await wait_until(pilot, lambda: "42 -> 7" in timeline_of(app), "the CLI's bump")
        actions = [
            line.split(maxsplit=1)[1]
            for line in timeline_of(app).splitlines()
            if "retried" in line or "priority changed" in line
        ]
        assert actions == [
            f"retried (requeued) by {cli}",
            f"retried (requeued) by {who}",
            f"priority changed 0 -> 42 by {who}",
            f"priority changed 42 -> 7 by {cli}",
        ]
