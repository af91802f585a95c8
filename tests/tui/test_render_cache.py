"""The tables keep each cell's rendering until that cell changes: what is drawn follows every
update, a moved row, and a row removed and added again under the same key."""

from __future__ import annotations

import io
import random
import string
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate

from fleetq import AsyncClient
from fleetq.worker import WorkerQueue
from tests.tui.dash_helpers import comfy_graph, first_snapshot, fresh, gpu_record
from tests.tui.test_actions import MakeApp
from tui.app import FleetqApp
from tui.widgets.summary import FleetSummary
from tui.widgets.synced_table import Row, SyncedTable


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


def screen_text(app: FleetqApp) -> list[str]:
    """The lines of the screen as the compositor draws them now (what the terminal shows),
    including the lines a table did not redraw since an earlier frame."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      color_system=None, legacy_windows=False)  # fmt: skip
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text().splitlines()


def line_of(lines: list[str], needle: str) -> str:
    found = [line for line in lines if needle in line]
    assert len(found) == 1, f"{needle!r} is on {len(found)} lines"
    return found[0]


async def test_screen_shows_rows_changed_in_place_and_keeps_the_others(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue
) -> None:
    ids = [(await aclient.submit(comfy_graph(i))).id for i in range(4)]
    claimed = (await worker.try_claim(["comfyui"], "node-a", 0)).job
    assert claimed is not None and claimed.id == ids[0]
    await worker.renew(claimed, progress=0.25, progress_text="KSampler")
    now = time.time()
    app = make_app(clock=lambda: now)  # ages stand still: only the renewed row may change
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        await pilot.pause()
        before = screen_text(app)
        assert "25%" in line_of(before, ids[0][:8])
        # One row changes in place (no row comes, goes or moves): the screen shows it...
        await worker.renew(claimed, progress=0.75, progress_text="KSampler")
        await fresh(pilot)
        await pilot.pause()
        after = screen_text(app)
        running = line_of(after, ids[0][:8])
        assert "75%" in running and "25%" not in running
        # ...and the rows that did not change are drawn as before.
        for job_id in ids[1:]:
            assert line_of(after, job_id[:8]) == line_of(before, job_id[:8])
        # A row that moves is drawn at its new place.
        await aclient.bump(ids[3], 9)
        await fresh(pilot)
        await pilot.pause()
        lines = screen_text(app)
        order = sorted(ids[1:], key=lambda i: lines.index(line_of(lines, i[:8])))
        assert order == [ids[3], ids[1], ids[2]]
        assert "position 0 (next)" in line_of(lines, ids[3][:8])


async def test_a_click_on_a_drawn_row_selects_it(make_app: MakeApp, aclient: AsyncClient) -> None:
    # The cells carry their row and column for the mouse, as DataTable's own drawing does.
    ids = [(await aclient.submit(comfy_graph(i))).id for i in range(4)]
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        await pilot.pause()
        table = app.main_screen.jobs
        assert table.cursor_key == ids[0]
        await pilot.click("#jobs", offset=(30, 4))  # border, header, then rows 0, 1, 2
        await pilot.pause()
        assert table.cursor_key == ids[2]


class Letters(SyncedTable):
    COLUMNS = (("Name", "name", 8), ("Value", "value", 8))

    def row_signature(self, item: str) -> str:
        return item

    def row_cells(self, item: str) -> tuple[Text, Text]:
        return (Text(item * 3), Text(f"v-{item}"))


class LettersApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Letters(id="letters")


def letter_rows(names: str) -> list[Row]:
    return [(n, n) for n in names]


async def test_rows_that_only_move_are_drawn_at_their_new_place() -> None:
    # Nothing in these rows changes but their order: the lines that now show another row are
    # redrawn, the others are left as drawn.
    app = LettersApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Letters)
        table.sync(letter_rows("abcdef"))
        await pilot.pause()
        assert [line[:12].split()[0] for line in screen_text(app)[1:7]] == [
            "aaa", "bbb", "ccc", "ddd", "eee", "fff",
        ]  # fmt: skip
        table.sync(letter_rows("abfcde"))
        await pilot.pause()
        lines = screen_text(app)[1:7]
        assert [line.split()[0] for line in lines] == ["aaa", "bbb", "fff", "ccc", "ddd", "eee"]
        assert [line.split()[1] for line in lines] == ["v-a", "v-b", "v-f", "v-c", "v-d", "v-e"]


def lines_both_ways(table: SyncedTable) -> list[tuple[list[object], list[object]]]:
    """Each line of ``table`` as the tables draw it, and as DataTable's own line assembly
    does (from the same cells), within one frame."""
    from textual.widgets import DataTable

    width = table.size.width
    scroll_x = int(table.scroll_x)
    out = []
    table._begin_frame()  # as in a frame (see DrawnTable.render_lines)
    try:
        for y in range(table.size.height):
            style = table.rich_style
            fast = table._render_line(y, scroll_x, scroll_x + width, style)
            own = DataTable._render_line(table, y, scroll_x, scroll_x + width, style)
            out.append((list(fast), list(own)))
    finally:
        table._end_frame()
    return out


def framed_both_ways(table: SyncedTable) -> list[tuple[list[object], list[object]]]:
    """Each line of ``table`` with its frame (border, line filters, the crop the compositor
    asks for), as the tables' styles cache draws it and as Textual's own does."""
    from textual._styles_cache import StylesCache
    from textual.geometry import Region

    from tui.widgets.table_lines import TableLines

    out = []
    width, height = table.region.size
    for crop in (Region(0, 0, width, height), Region(0, 0, width - 1, height)):
        table._begin_frame()
        try:
            ours = TableLines(table.content_line).render_widget(table, crop)
            theirs = StylesCache().render_widget(table, crop)
        finally:
            table._end_frame()
        out += [(list(a), list(b)) for a, b in zip(ours, theirs, strict=True)]
    return out


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
async def test_lines_are_drawn_as_datatable_assembles_them(
    make_app: MakeApp,
    aclient: AsyncClient,
    worker: WorkerQueue,
    publish: Callable[..., Awaitable[None]],
    size: tuple[int, int],
) -> None:
    # Every line of both tables, with the cursor, the mouse hover, a marked job, zebra rows,
    # the fixed name column, focus on and off, and a terminal too narrow for the columns:
    # segment for segment what DataTable itself makes of the same cells.
    ids = [(await aclient.submit(comfy_graph(i))).id for i in range(6)]
    claimed = (await worker.try_claim(["comfyui"], "node-a", 0)).job
    assert claimed is not None
    await worker.renew(claimed, progress=0.4, progress_text="KSampler")
    await publish("node-a", [gpu_record(i, util=20 * i) for i in range(4)])
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await first_snapshot(pilot)
        await pilot.pause()
        screen = app.main_screen
        jobs, gpus = screen.jobs, screen.gpus
        assert jobs.row_count == 6 and gpus.row_count == 5
        jobs.focus()
        jobs.move_cursor(row=2)
        await pilot.press("space")  # marks the job under the cursor
        jobs.hover_coordinate = Coordinate(3, 0)
        jobs._set_hover_cursor(True)
        gpus.move_cursor(row=1)
        await pilot.pause()
        checked = 0
        for table in (jobs, gpus):
            for fast, own in lines_both_ways(table):
                assert fast == own
                checked += 1
            for fast, own in framed_both_ways(table):  # the border and filters too
                assert fast == own
        gpus.focus()
        await pilot.pause()
        for table in (jobs, gpus):
            for fast, own in lines_both_ways(table):
                assert fast == own
            for fast, own in framed_both_ways(table):
                assert fast == own
        assert checked > 10
        assert any(ids[2] in "".join(s.text for s in fast) for fast, _ in lines_both_ways(jobs))


async def test_rows_keep_their_places_through_any_sequence_of_changes() -> None:
    # Rows come, go and move in random ways (a reorder moves only the span between the first
    # and the last row that moved): after each sync the table's order is exactly the one asked.
    rng = random.Random(7)
    app = LettersApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(Letters)
        letters = list(string.ascii_letters)
        shown: list[str] = []
        for _ in range(60):
            kept = [k for k in shown if rng.random() > 0.1]
            if rng.random() < 0.7 and len(kept) > 1:  # swap two, or move one a few places
                i, j = rng.randrange(len(kept)), rng.randrange(len(kept))
                kept.insert(j, kept.pop(i))
            new = [k for k in rng.sample(letters, 4) if k not in kept][: rng.randint(0, 3)]
            for k in new:
                kept.insert(rng.randint(0, len(kept)), k)
            table.sync(letter_rows("".join(kept)))
            shown = kept
            order = [table._row_locations.get_key(i) for i in range(table.row_count)]
            assert [None if k is None else k.value for k in order] == shown
            assert all(table.get_row_index(k) == i for i, k in enumerate(shown))
        await pilot.pause()
        # The scrollable size follows the rows (header + one line each).
        assert table.virtual_size.height == len(shown) + 1
        lines = screen_text(app)[1:]
        assert [line.split()[0] for line in lines[: min(len(shown), 10)]] == [
            k * 3 for k in shown[:10]
        ]


async def test_new_counts_in_the_top_line_do_not_lay_out_the_screen(
    make_app: MakeApp, aclient: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The top line's counts change about every second on a busy fleet; laying the screen out
    # again for it redrew every line of every pane each time.
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        await pilot.pause()
        layouts: list[object] = []
        refresh = FleetSummary.refresh

        def spy(self: FleetSummary, *regions: Any, layout: bool = False, **kw: Any) -> Any:
            if layout:
                layouts.append(self)
            return refresh(self, *regions, layout=layout, **kw)

        monkeypatch.setattr(FleetSummary, "refresh", spy)
        await aclient.submit(comfy_graph(1))
        await fresh(pilot)
        await pilot.pause()
        summary = app.main_screen.summary
        assert "1 queued" in "".join(s.text for s in summary.render_line(0))
        assert layouts == []
