"""A DataTable updated in place from keyed rows (the Dolphie recipe).

Each refresh removes the rows that left, updates only the cells that changed, adds the new
rows, and re-sorts only when the order changed; the cursor stays on the same row key.
No ``clear()`` per refresh, so nothing flickers and the cursor never jumps.

What changed is drawn by :class:`~tui.widgets.drawn_table.DrawnTable`, which redraws only
that.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets.data_table import ColumnKey

from tui.widgets.drawn_table import DrawnTable

#: A row: its key and what it shows (a job, a GPU...), which the table's row_signature and
#: row_cells read. Both are called only for the rows on screen (and rows new to the table):
#: a row off screen is brought up to date when it scrolls into view.
Row = tuple[str, Any]


class SyncedTable(DrawnTable):
    """A row-cursor DataTable whose content is replaced by :meth:`sync`."""

    #: (label, key, width) of each column; the width is the least it gets.
    COLUMNS: tuple[tuple[str, str, int], ...] = ()
    #: Columns that share the room a wider terminal leaves (key -> weight): the text they cut
    #: short at their least width (errors, health reasons, names) shows in full when it fits.
    FLEX: dict[str, int] = {}

    def __init__(self, *, id: str | None = None) -> None:
        # The first column (the name) stays in view when the table scrolls sideways.
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, fixed_columns=1)
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._signatures: dict[str, Hashable] = {}
        self._order: list[str] = []  # the row keys as displayed (tracked, not re-read)
        #: Off-screen rows that may have changed: key -> what it shows now, looked at when it
        #: scrolls into view.
        self._pending: dict[str, Any] = {}
        self._columns = [c[1] for c in self.COLUMNS]
        #: The longest cell of each flex column (what it would need to show in full).
        self._longest: dict[str, int] = {}
        #: Row key -> the length of each of its flex columns' cells (see _measure_flex).
        self._flex_lengths: dict[str, tuple[int, ...]] = {}
        self._flex_index = [self._columns.index(key) for key in self.FLEX]

    def on_mount(self) -> None:
        for label, key, width in self.COLUMNS:
            self.add_column(label, key=key, width=width)
        self._fit_columns()

    def _fit_columns(self, shrink: bool = True) -> None:
        """Share the room left over at this width among the flex columns, each up to what its
        longest cell needs (none when the terminal is narrow: they keep their least width).

        A refresh (``shrink=False``) only widens: a width change redraws the whole table, so
        it must not follow every change of the longest progress text; a resize re-fits."""
        if not self.FLEX or not self.columns:
            return
        room = self.scrollable_content_region.width - 1  # the vertical scrollbar may come
        least = {key: width for _, key, width in self.COLUMNS}
        spare = max(0, room - sum(least.values()) - 2 * self.cell_padding * len(least))
        need = {key: max(0, self._longest.get(key, 0) - least[key]) for key in self.FLEX}
        give = dict.fromkeys(self.FLEX, 0)
        # Water-fill: by weight, each capped at its need, until the room or the needs run out.
        while spare > 0:
            hungry = {k: w for k, w in self.FLEX.items() if give[k] < need[k]}
            if not hungry:
                break
            total = sum(hungry.values())
            handed = 0
            for key, weight in hungry.items():
                share = min(need[key] - give[key], max(1, spare * weight // total))
                share = min(share, spare - handed)
                give[key] += share
                handed += share
            spare -= handed
            if handed == 0:
                break
        changed = False
        for key in self.FLEX:
            column = self.columns.get(ColumnKey(key))
            if column is None:
                continue
            width = least[key] + give[key]
            if not shrink:
                width = max(width, column.width)
            if column.width != width:
                column.width = width
                changed = True
        if changed:
            # DataTable has no public "resize a column": recompute its size and drop its
            # render caches, as it does itself after add_column.
            self._require_update_dimensions = True
            self._clear_caches()
            self.refresh()

    @property
    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        row_key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        return None if row_key.value is None else str(row_key.value)

    def sync(self, rows: Sequence[Row]) -> None:
        """Make the table show ``rows`` (in this order), touching only what changed.

        Rows are added, removed and re-ordered at once; a row off screen is not looked at (not
        even its signature) until it scrolls into view, so the cost of a refresh follows what
        is visible, not the length of the table.
        """
        keep = self.cursor_key
        wanted = [key for key, _ in rows]
        wanted_set = set(wanted)
        window = self._window()
        with self.app.batch_update():
            gone = [k for k in self._cells if k not in wanted_set]
            self._rows_changed |= bool(gone)
            if gone:
                self._remove_rows(gone)
            for key in gone:
                for column in self._columns:
                    self._cell_versions.pop((key, column), None)
                self._row_versions.pop(key, None)
                del self._cells[key]
                self._flex_lengths.pop(key, None)
                del self._signatures[key]
                self._pending.pop(key, None)
            order = [k for k in self._order if k in wanted_set] if gone else self._order
            pending = self._pending
            for position, (key, item) in enumerate(rows):
                if key in self._cells:
                    if position in window:
                        pending.pop(key, None)
                        self._update(key, item)
                    else:  # what it shows is worked out if and when it scrolls into view
                        pending[key] = item
                    continue
                cells = tuple(self.row_cells(item))
                self._rows_changed = True
                self.add_row(*cells, key=key)
                for column in self._columns:
                    self._new_version(key, column)
                self._set_cells(key, cells)
                self._signatures[key] = self.row_signature(item)
                order.append(key)
            if order != wanted:
                self._reorder(order, wanted, window)
            self._order = wanted
            if keep is not None and keep in wanted_set:
                index = self.get_row_index(keep)
                if index != self.cursor_row:
                    self.move_cursor(row=index, animate=False)
            self._flush_visible()
            self._redraw_changed_cells()
        if self.FLEX:
            self._measure_flex()
            self._fit_columns(shrink=False)

    def _set_cells(self, key: str, cells: tuple[Text, ...]) -> None:
        self._cells[key] = cells
        if self._flex_index:
            self._flex_lengths[key] = tuple(cells[i].cell_len for i in self._flex_index)

    def _measure_flex(self) -> None:
        # The lengths are measured when a row's cells are set, not again for every row at
        # every refresh.
        if not self._flex_lengths:
            self._longest = dict.fromkeys(self.FLEX, 0)
            return
        columns = zip(*self._flex_lengths.values(), strict=True)
        self._longest = {key: max(lengths) for key, lengths in zip(self.FLEX, columns, strict=True)}

    def row_signature(self, item: Any) -> Hashable:
        """What the row of ``item`` shows, in short: an equal signature, nothing to redraw
        (everything it shows; times only as precise as they are printed)."""
        raise NotImplementedError

    def row_cells(self, item: Any) -> Sequence[Text]:
        """The cells of the row of ``item``, one per column (built only when its signature
        changed)."""
        raise NotImplementedError

    def _update(self, key: str, item: Any) -> None:
        """Bring a row up to date: its cells are built again only if its signature changed."""
        shown = self.row_signature(item)
        if shown == self._signatures[key]:
            return
        new = tuple(self.row_cells(item))
        for column, before, after in zip(self._columns, self._cells[key], new, strict=True):
            if before != after:
                self._new_version(key, column)
                self._set_cell(key, column, after)
        self._set_cells(key, new)
        self._signatures[key] = shown

    def _window(self) -> range:
        """The row indexes on screen, with a margin."""
        top = int(self.scroll_y)
        return range(max(0, top - 4), top + max(1, self.size.height) + 4)

    def _flush_visible(self) -> None:
        if not self._pending:
            return
        # Look up the few rows on screen, not the place of every pending row.
        locations = self._row_locations
        keys = []
        for index in self._window():
            row_key = locations.get_key(index)
            if row_key is not None and row_key.value in self._pending:
                keys.append(row_key.value)
        for key in keys:
            self._update(key, self._pending.pop(key))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._pending:
            with self.app.batch_update():
                self._flush_visible()
                self._redraw_changed_cells()

    def on_resize(self) -> None:
        self._fit_columns()
        self._flush_visible()
        self._redraw_changed_cells()
