"""A DataTable updated in place from keyed rows (the Dolphie recipe).

Each refresh removes the rows that left, updates only the cells that changed, adds the new
rows, and re-sorts only when the order changed; the cursor stays on the same row key.
No ``clear()`` per refresh, so nothing flickers and the cursor never jumps.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from tui.widgets.cell_line import cell_line

#: Rendered cells kept (a 160x48 screen shows about 400).
RENDER_CACHE_SIZE = 4000


class KeyCell(Text):
    """The first cell of a row: a ``Text`` that also carries its row key, for sorting."""

    row_key: str = ""

    @classmethod
    def of(cls, key: str, value: Text) -> KeyCell:
        cell = cls(
            value.plain,
            style=value.style,
            justify=value.justify,
            overflow=value.overflow,
            no_wrap=value.no_wrap,
            end=value.end,
            spans=list(value.spans),
        )
        cell.row_key = key
        return cell


#: A row: its key, a signature of what it shows (equal signature: nothing to redraw), and a
#: function that builds its cells (only called when the signature changed).
Row = tuple[str, Hashable, Callable[[], Sequence[Text]]]


class SyncedTable(DataTable[Any]):
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
        #: Off-screen rows whose new cells are not drawn yet: key -> (signature, build).
        self._pending: dict[str, tuple[Hashable, Callable[[], Sequence[Text]]]] = {}
        self._columns = [c[1] for c in self.COLUMNS]
        #: The longest cell of each flex column (what it would need to show in full).
        self._longest: dict[str, int] = {}
        #: Per-cell render cache that survives updates of other cells (see _render_cell).
        self._cell_lines: LRUCache[tuple[object, ...], Any] = LRUCache(RENDER_CACHE_SIZE)
        #: (row key, column key) -> how many times that cell changed.
        self._cell_versions: dict[tuple[str, str], int] = {}
        self._version_counter = 0

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

        Rows are added, removed and re-ordered at once; the cells of a row that changed but is
        off screen are brought up to date when it scrolls into view, so the cost of a refresh
        follows what is visible, not the length of the table.
        """
        keep = self.cursor_key
        wanted = [key for key, _, _ in rows]
        wanted_set = set(wanted)
        window = self._window()
        with self.app.batch_update():
            gone = [k for k in self._cells if k not in wanted_set]
            for key in gone:
                for column in self._columns:
                    self._cell_versions.pop((key, column), None)
                self.remove_row(key)
                del self._cells[key]
                del self._signatures[key]
                self._pending.pop(key, None)
            order = [k for k in self._order if k in wanted_set] if gone else self._order
            for position, (key, signature, build) in enumerate(rows):
                if key in self._cells:
                    if self._signatures[key] == signature:
                        self._pending.pop(key, None)
                    elif position in window:
                        self._update(key, signature, build)
                    else:
                        self._pending[key] = (signature, build)
                    continue
                cells = tuple(build())
                self.add_row(KeyCell.of(key, cells[0]), *cells[1:], key=key)
                for column in self._columns:
                    self._new_version(key, column)
                self._cells[key] = cells
                self._signatures[key] = signature
                order.append(key)
            if order != wanted:
                rank = {key: i for i, key in enumerate(wanted)}
                self.sort(key=lambda values: rank[values[0].row_key])
            self._order = wanted
            if keep is not None and keep in wanted_set:
                index = self.get_row_index(keep)
                if index != self.cursor_row:
                    self.move_cursor(row=index, animate=False)
            self._flush_visible()
        if self.FLEX:
            self._measure_flex()
            self._fit_columns(shrink=False)

    def _measure_flex(self) -> None:
        index = {key: self._columns.index(key) for key in self.FLEX}
        longest = dict.fromkeys(self.FLEX, 0)
        for cells in self._cells.values():
            for key, i in index.items():
                length = cells[i].cell_len
                if length > longest[key]:
                    longest[key] = length
        self._longest = longest

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> Any:
        # DataTable keys its cell cache on a counter that every update_cell bumps, so one
        # changed cell re-renders every visible cell. Here a cell is re-rendered only when it
        # changed (its version), moved (its row index), or its look did (style, cursor,
        # width, focus, theme).
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cell = (str(row_key.value), str(column_key.value))
        key = (
            cell, self._cell_versions.get(cell, 0), row_index, base_style, width, cursor, hover,
            self._show_hover_cursor, self._pseudo_class_state, self.app.theme,
        )  # fmt: skip
        lines = self._cell_lines.get(key)
        if lines is None:
            line = self._draw_cell(row_index, column_index, base_style, width, cursor, hover)
            if line is None:  # not one line of Text: Rich draws it
                lines = super()._render_cell(
                    row_index, column_index, base_style, width, cursor, hover
                )
            else:
                lines = [line]
            self._cell_lines[key] = lines
        return lines

    def _draw_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool,
        hover: bool,
    ) -> list[Segment] | None:
        """A data cell drawn as DataTable draws it (its styles, the row and column meta that
        mouse clicks read), straight to segments; None when it is not one line of Text."""
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        row = None if row_key is None else self.rows.get(row_key)
        if row is None or column_key is None or row.height != 1:
            return None
        cell = self._data[row_key].get(column_key)
        if not isinstance(cell, Text):
            return None
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            row_index < self.fixed_rows or column_index < self.fixed_columns,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        base_style += Style.from_meta({"row": row_index, "column": column_index})
        return cell_line(
            self.app.console,
            cell,
            width,
            self.cell_padding,
            base_style + component_style,
            post_style,
        )

    def _new_version(self, key: str, column: str) -> None:
        # Versions come from one counter: a row removed and added again under the same key
        # never meets a render of its former self in the cache.
        self._version_counter += 1
        self._cell_versions[(key, column)] = self._version_counter

    def _update(self, key: str, signature: Hashable, build: Callable[[], Sequence[Text]]) -> None:
        new = tuple(build())
        for index, (column, before, after) in enumerate(
            zip(self._columns, self._cells[key], new, strict=True)
        ):
            if before != after:
                self._new_version(key, column)
                self.update_cell(key, column, KeyCell.of(key, after) if index == 0 else after)
        self._cells[key] = new
        self._signatures[key] = signature

    def _window(self) -> range:
        """The row indexes on screen, with a margin."""
        top = int(self.scroll_y)
        return range(max(0, top - 4), top + max(1, self.size.height) + 4)

    def _flush_visible(self) -> None:
        if not self._pending:
            return
        window = self._window()
        for key in [k for k in self._pending if self.get_row_index(k) in window]:
            signature, build = self._pending.pop(key)
            self._update(key, signature, build)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._pending:
            with self.app.batch_update():
                self._flush_visible()

    def on_resize(self) -> None:
        self._fit_columns()
        self._flush_visible()
