"""The tables keep each cell's rendering until that cell changes: what is drawn follows every
update, a moved row, and a row removed and added again under the same key."""

from __future__ import annotations

from fleetq import AsyncClient
from tests.tui.dash_helpers import comfy_graph, first_snapshot, fresh
from tests.tui.test_actions import MakeApp
from tui.widgets.synced_table import SyncedTable


def drawn_row(table: SyncedTable, job_id: str) -> str:
    """The text drawn on screen for the row of ``job_id``."""
    for y in range(table.size.height):
        text = "".join(segment.text for segment in table.render_line(y))
        if job_id in text:
            return text
    raise AssertionError(f"{job_id} is not drawn")


async def test_drawn_cells_follow_updates_and_moves(
    make_app: MakeApp, aclient: AsyncClient
) -> None:
    ids = [(await aclient.submit(comfy_graph(i))).id for i in range(3)]
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        table = app.main_screen.jobs
        assert "position 2" in drawn_row(table, ids[2])
        # A cell changes in a row that does not move: redrawn.
        await aclient.bump(ids[0], 5)
        await fresh(pilot)
        await pilot.pause()
        assert " 5 " in drawn_row(table, ids[0])
        await aclient.bump(ids[2], 7)
        await fresh(pilot)
        await pilot.pause()
        row = drawn_row(table, ids[2])
        assert " 7 " in row and "position 0 (next)" in row
        assert "position 1" in drawn_row(table, ids[0])  # moved down, redrawn (0 -> 1)

        await aclient.cancel(ids[2])
        await fresh(pilot)
        await aclient.retry(ids[2])  # back under the same key, at priority 7
        await fresh(pilot)
        await pilot.pause()
        assert "position 0 (next)" in drawn_row(table, ids[2])
