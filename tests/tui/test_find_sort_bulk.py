"""Find (/), sort by column with the cursor kept on its job, and bulk actions on marked jobs."""

from __future__ import annotations

from fleetq import AsyncClient, JobState
from tests.tui.dash_helpers import actions_done, comfy_graph, first_snapshot, fresh, wait_until
from tests.tui.test_actions import MakeApp, Notes, select_job
from tui.screens.confirm import ConfirmBulk
from tui.screens.detail import JobDetailScreen


def shown(app) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(r.key.value) for r in app.main_screen.jobs.ordered_rows]


async def test_find_by_tenant_and_id_prefix(make_app: MakeApp, aclient: AsyncClient) -> None:
    acme = [
        (await aclient.submit(comfy_graph(i), metadata={"tenant": "acme"})).id for i in range(2)
    ]
    other = (await aclient.submit(comfy_graph(9), metadata={"tenant": "globex"})).id
    gone = (await aclient.submit(comfy_graph(10))).id
    await aclient.cancel(gone)
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("slash", *"acme")
        await wait_until(pilot, lambda: shown(app) == acme, "the tenant's jobs")
        assert "find 'acme': 2 match" in str(app.main_screen.jobs.border_title)
        await fresh(pilot)
        assert shown(app) == acme  # a refresh keeps the find
        await pilot.press("escape")
        await wait_until(pilot, lambda: set(shown(app)) == {*acme, other}, "every job again")

        await pilot.press("slash", *other[:5], "enter")
        await wait_until(pilot, lambda: shown(app) == [other], "the id prefix match")
        assert app.main_screen.jobs.has_focus and app.main_screen.jobs.cursor_key == other
        await pilot.press("escape")

        # A whole id that is not on the page (a cancelled job under "active") opens its detail.
        await pilot.press("slash", *gone, "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "the detail")
        assert app.screen.job_id == gone  # type: ignore[attr-defined]


async def test_sort_by_column_keeps_the_cursor_on_its_job(
    make_app: MakeApp, aclient: AsyncClient
) -> None:
    ids = [(await aclient.submit(comfy_graph(i), priority=i)).id for i in range(4)]
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        jobs = app.main_screen.jobs
        assert shown(app) == ids[::-1]  # by priority, highest first
        select_job(app, ids[1])
        row_before = jobs.cursor_row
        await pilot.press("o")  # by priority, highest first: the default order
        assert jobs.sort_by == ("priority", True) and shown(app) == ids[::-1]
        await pilot.click("#jobs", offset=(44, 1))  # the Prio title: lowest first
        await wait_until(pilot, lambda: jobs.sort_by == ("priority", False), "the reverse")
        assert shown(app) == ids
        assert jobs.cursor_key == ids[1] and jobs.cursor_row != row_before
        assert "sorted by Prio ↑" in str(jobs.border_title)
        await fresh(pilot)
        assert shown(app) == ids and jobs.cursor_key == ids[1]


async def test_bulk_kill_and_bump_with_one_confirmation(
    make_app: MakeApp, aclient: AsyncClient
) -> None:
    ids = [(await aclient.submit(comfy_graph(i))).id for i in range(4)]
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        jobs = app.main_screen.jobs
        select_job(app, ids[0])
        await pilot.press("space", "space")  # marks ids[0], then ids[1] (the cursor moves)
        assert set(jobs.marked) == set(ids[:2])
        await pilot.press("plus")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmBulk), "the confirmation")
        dialog = app.screen
        assert isinstance(dialog, ConfirmBulk)
        assert dialog.question.plain == "Raise the priority of 2 marked jobs?"
        await pilot.press("y")
        await actions_done(app)
        assert [(await aclient.status(i)).priority for i in ids] == [1, 1, 0, 0]
        assert notes.last() == "2 jobs re-prioritized"
        assert not jobs.marked

        await fresh(pilot)
        select_job(app, ids[1])
        await pilot.press("space", "space", "space")  # ids[1], ids[2], ids[3]
        await pilot.press("k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmBulk), "the confirmation")
        assert app.screen.question.plain == "Kill 3 marked jobs?"  # type: ignore[attr-defined]
        await pilot.press("y")
        await actions_done(app)
        states = [(await aclient.status(i)).state for i in ids]
        assert states.count(JobState.CANCELLED) == 3
        assert notes.last() == "3 jobs killed"
