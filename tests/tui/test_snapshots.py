"""SVG snapshots of the dashboard's views on the fixed demo fleet (no Redis, fixed clock).

Regenerate after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and review the SVGs in ``tests/tui/__snapshots__/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from textual.pilot import Pilot

from fleetq import JobState
from tests.tui.dash_helpers import first_snapshot, wait_until
from tui.app import FleetqApp
from tui.demo import demo_app
from tui.screens.confirm import ConfirmKill
from tui.screens.detail import JobDetailScreen
from tui.screens.gpu_detail import GpuDetailScreen
from tui.screens.help import HelpScreen
from tui.source import StaticSource

SIZE = (160, 48)
SnapCompare = Callable[..., bool]


def _job_id(app: FleetqApp, state: JobState) -> str:
    source = app.source
    assert isinstance(source, StaticSource)
    return next(j.id for j in source.jobs if j.state is state)


def test_main_view(snap_compare: SnapCompare) -> None:
    assert snap_compare(demo_app(), terminal_size=SIZE, run_before=first_snapshot)


def test_main_view_readonly(snap_compare: SnapCompare) -> None:
    assert snap_compare(demo_app(readonly=True), terminal_size=SIZE, run_before=first_snapshot)


def test_failed_jobs_filter(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, FleetqApp)
        await first_snapshot(pilot)
        await pilot.press("s", "s", "s")
        await wait_until(
            pilot,
            lambda: (
                app.main_screen.snapshot is not None
                and app.main_screen.snapshot.job_filter.state == "failed"
            ),
            "the failed filter",
        )

    assert snap_compare(demo_app(), terminal_size=SIZE, run_before=run_before)


def test_gpu_pane_zoomed(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await first_snapshot(pilot)
        await pilot.press("3", "down", "z")

    assert snap_compare(demo_app(), terminal_size=(160, 30), run_before=run_before)


def test_job_detail_of_a_failed_job(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, FleetqApp)
        await first_snapshot(pilot)
        app.main_screen._open(_job_id(app, JobState.FAILED))

        def loaded() -> bool:
            screen = app.screen
            return isinstance(screen, JobDetailScreen) and "9 nodes" in screen.view.section_text(
                "workflow"
            )

        await wait_until(pilot, loaded, "the job detail")

    assert snap_compare(demo_app(), terminal_size=(120, 44), run_before=run_before)


def test_kill_confirmation(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, FleetqApp)
        await first_snapshot(pilot)
        await pilot.press("down", "down", "k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmKill), "the confirmation")

    assert snap_compare(demo_app(), terminal_size=(120, 36), run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (120, 36), (200, 60)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_view_at_terminal_size(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(demo_app(), terminal_size=size, run_before=first_snapshot)


def test_compact_view_scrolled_sideways(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await first_snapshot(pilot)
        await pilot.press(*["right"] * 40)  # the job ids stay; the progress column comes in

    assert snap_compare(demo_app(), terminal_size=(80, 24), run_before=run_before)


def test_keys_screen(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await first_snapshot(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the keys screen")

    assert snap_compare(demo_app(), terminal_size=(120, 44), run_before=run_before)


def test_gpu_detail_of_a_lost_gpu(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, FleetqApp)
        await first_snapshot(pilot)
        gpus = app.main_screen.gpus
        await pilot.press("3")
        gpus.move_cursor(row=gpus.get_row_index("gpu-node-02:1"), animate=False)
        await pilot.press("g")
        await wait_until(pilot, lambda: isinstance(app.screen, GpuDetailScreen), "the GPU view")

    assert snap_compare(demo_app(), terminal_size=(120, 44), run_before=run_before)


def unrunnable_app() -> tuple[FleetqApp, str]:
    """The demo fleet where one queued job is one no live machine can run."""
    app = demo_app()
    source = app.source
    assert isinstance(source, StaticSource)
    stuck = next(j for j in source.jobs if j.state is JobState.QUEUED and j.ready_ms is None)
    reason = "needs checkpoint flux1-dev.safetensors"
    source.jobs = tuple(replace(j, unschedulable=reason) if j is stuck else j for j in source.jobs)
    return app, stuck.id


def test_an_unrunnable_job_is_marked_in_the_list(snap_compare: SnapCompare) -> None:
    app, _ = unrunnable_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=first_snapshot)


def test_job_detail_of_an_unrunnable_job(snap_compare: SnapCompare) -> None:
    app, stuck = unrunnable_app()

    async def run_before(pilot: Pilot[Any]) -> None:
        await first_snapshot(pilot)
        app.main_screen._open(stuck)

        def loaded() -> bool:
            screen = app.screen
            return isinstance(screen, JobDetailScreen) and "no live machine" in (
                screen.view.section_text("overview")
            )

        await wait_until(pilot, loaded, "the job detail")

    assert snap_compare(app, terminal_size=(120, 44), run_before=run_before)
