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
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from tui.widgets.cell_line import cell_line

#: Rendered cells kept (a 160x48 screen shows about 400).
RENDER_CACHE_SIZE = 4000
#: What DataTable adds to the style of the fixed columns' cells.
_FIXED_META = Style.from_meta({"fixed": True})

#: Lines of segments (one list per line), as DataTable's renderers return them.
SegmentLines = list[list[Segment]]


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
        #: (row index, column index) -> the style carrying that place (see _draw_cell).
        self._meta_styles: dict[tuple[int, int], Style] = {}
        #: Rows whose cells were changed in place since the table was last asked to redraw,
        #: and whether rows were added or removed since (then all of it is redrawn).
        self._changed_rows: set[str] = set()
        self._rows_changed = False
        #: Row key -> the length of each of its flex columns' cells (see _measure_flex).
        self._flex_lengths: dict[str, tuple[int, ...]] = {}
        self._flex_index = [self._columns.index(key) for key in self.FLEX]
        #: Component styles looked up while one frame is drawn (see render_lines); None
        #: between frames.
        self._frame_styles: dict[str, Style] | None = None

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
            self._rows_changed |= bool(gone)
            for key in gone:
                for column in self._columns:
                    self._cell_versions.pop((key, column), None)
                self.remove_row(key)
                del self._cells[key]
                self._flex_lengths.pop(key, None)
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
                self._rows_changed = True
                self.add_row(*cells, key=key)
                for column in self._columns:
                    self._new_version(key, column)
                self._set_cells(key, cells)
                self._signatures[key] = signature
                order.append(key)
            if order != wanted:
                self._reorder(wanted, window)
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

    def _reorder(self, wanted: list[str], window: range) -> None:
        """Put the rows in the order of ``wanted`` (every row of the table, each once).

        DataTable.sort would redraw the whole table; here only the lines on screen that now
        show another row are redrawn (a reorder below the screen redraws nothing).
        """
        locations = self._row_locations
        before = [locations.get_key(index) for index in window]
        for index, key in enumerate(wanted):
            locations[RowKey(key)] = index
        self._update_count += 1
        for index, was in zip(window, before, strict=True):
            now = locations.get_key(index)
            if now is not None and now != was and now.value is not None:
                self._changed_rows.add(now.value)

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
        # The header (row -1) is keyed on what its label shows.
        column_key = self._column_locations.get_key(column_index)
        if row_index < -1 or column_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        version: Hashable
        if row_index == -1:
            label = self.columns[column_key].label
            cell = ("", str(column_key.value))
            version = (label.plain, label.style, tuple(label.spans), label.justify, label.overflow)
        else:
            row_key = self._row_locations.get_key(row_index)
            if row_key is None:
                return super()._render_cell(
                    row_index, column_index, base_style, width, cursor, hover
                )
            cell = (str(row_key.value), str(column_key.value))
            version = self._cell_versions.get(cell, 0)
        key = (
            cell, version, row_index, base_style, width, cursor, hover,
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
        header = row_index == -1
        column_key = self._column_locations.get_key(column_index)
        if column_key is None:
            return None
        cell: object
        if header:
            if self.header_height != 1:
                return None
            cell = self.columns[column_key].label
        else:
            row_key = self._row_locations.get_key(row_index)
            if row_key is None or self.rows[row_key].height != 1:
                return None
            cell = self._data[row_key].get(column_key)
        if not isinstance(cell, Text):
            return None
        component_style, post_style = self._get_styles_to_render_cell(
            header,
            False,
            not header and (row_index < self.fixed_rows or column_index < self.fixed_columns),
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        # The row and column a mouse click on the cell reads (one style per place, kept).
        meta = self._meta_styles.get((row_index, column_index))
        if meta is None:
            meta = Style.from_meta({"row": row_index, "column": column_index})
            self._meta_styles[(row_index, column_index)] = meta
        base_style += meta
        return cell_line(
            self.app.console,
            cell,
            width,
            self.cell_padding,
            base_style + component_style,
            post_style,
        )

    def render_lines(self, crop: Region) -> list[Strip]:
        # DataTable looks up its component styles (each walks the DOM up to the screen) for
        # every line it draws; within one frame they cannot change, so each is looked up once.
        self._frame_styles = {}
        try:
            return super().render_lines(crop)
        finally:
            self._frame_styles = None

    def _component_style(self, name: str) -> Style:
        """``get_component_styles(name).rich_style``, as DataTable reads it; once per frame."""
        memo = self._frame_styles
        if memo is None:
            return self.get_component_styles(name).rich_style
        style = memo.get(name)
        if style is None:
            style = memo[name] = self.get_component_styles(name).rich_style
        return style

    @property
    def rich_style(self) -> Style:
        memo = self._frame_styles
        if memo is None:
            return super().rich_style
        style = memo.get("")
        if style is None:
            style = memo[""] = super().rich_style
        return style

    def _get_row_style(self, row_index: int, base_style: Style) -> Style:
        if row_index == -1:
            return self._component_style("datatable--header")
        if row_index < self.fixed_rows:
            return self._component_style("datatable--fixed")
        if self.zebra_stripes:
            return self._component_style(
                "datatable--odd-row" if row_index % 2 else "datatable--even-row"
            )
        return base_style

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> tuple[SegmentLines, SegmentLines]:
        # DataTable's own, for the rows of these tables (a row cursor, no row labels), with
        # the styles looked up once per frame instead of once or twice per line.
        if (
            self._frame_styles is None
            or self.cursor_type != "row"
            or (self._labelled_row_exists and self.show_row_labels)
        ):
            return super()._render_line_in_row(
                row_key, line_no, base_style, cursor_location, hover_location
            )
        cache_key = (
            row_key, line_no, base_style, cursor_location, hover_location, self.cursor_type,
            self.show_cursor, self._show_hover_cursor, self._update_count,
            self._pseudo_class_state,
        )  # fmt: skip
        cached = self._row_render_cache.get(cache_key)
        if cached is not None:
            return cached
        row_index = self._row_locations.get(row_key)
        if row_index is None:
            row_index = -1
        # A row cursor highlights every cell of its row.
        cursor = cursor_location.row == row_index
        hover = hover_location.row == row_index
        render_cell = self._render_cell
        columns = self.ordered_columns
        fixed_columns = self.fixed_columns
        fixed_row: SegmentLines = []
        if fixed_columns:
            if row_index == -1:
                fixed_style = self._component_style("datatable--header")
            else:
                fixed_style = self._component_style("datatable--fixed") + _FIXED_META
            for column_index, column in enumerate(columns[:fixed_columns]):
                width = column.get_render_width(self)
                fixed_row.append(
                    render_cell(row_index, column_index, fixed_style, width, cursor, hover)[line_no]
                )
        row_style = self._get_row_style(row_index, base_style)
        scrollable_row: SegmentLines = []
        table_width = self._row_label_column_width
        for column_index, column in enumerate(columns):
            width = column.get_render_width(self)
            if column_index >= fixed_columns:
                table_width += width
            scrollable_row.append(
                render_cell(row_index, column_index, row_style, width, cursor, hover)[line_no]
            )
        # The row's style carried on past the last column, to the widget's edge.
        remaining_space = max(0, self.size.width - table_width)
        extend_style, _ = self._get_styles_to_render_cell(
            row_index == -1,
            False,
            False,
            hover_location.row == (row_index or 0),
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            False,
            False,
        )
        extend_style = row_style + extend_style
        extend_style += Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
        scrollable_row.append([Segment(" " * remaining_space, extend_style)])
        row_pair = (fixed_row, scrollable_row)
        self._row_render_cache[cache_key] = row_pair
        return row_pair

    def _new_version(self, key: str, column: str) -> None:
        # Versions come from one counter: a row removed and added again under the same key
        # never meets a render of its former self in the cache.
        self._version_counter += 1
        self._cell_versions[(key, column)] = self._version_counter

    def _update(self, key: str, signature: Hashable, build: Callable[[], Sequence[Text]]) -> None:
        new = tuple(build())
        for column, before, after in zip(self._columns, self._cells[key], new, strict=True):
            if before != after:
                self._new_version(key, column)
                self._set_cell(key, column, after)
        self._set_cells(key, new)
        self._signatures[key] = signature

    def _set_cell(self, key: str, column: str, value: Text) -> None:
        # DataTable.update_cell, less the redraw of the whole table it asks for each cell:
        # the table is redrawn once, after all the cells of a refresh are set (the cells that
        # did not change come from the cell cache).
        self._data[RowKey(key)][ColumnKey(column)] = value
        self._update_count += 1
        self._changed_rows.add(key)

    def _redraw_changed_cells(self) -> None:
        """Redraw the lines of the rows whose cells changed (all of the table when rows came
        or went): the other lines on screen stay as drawn."""
        changed, self._changed_rows = self._changed_rows, set()
        if self._rows_changed:
            self._rows_changed = False
            self.refresh()
            return
        if not changed:
            return
        # The rows are one line high, under a fixed header: the row at index i is drawn at
        # line header + i - scroll_y, when that is below the header and on screen.
        top = self.header_height if self.show_header else 0
        scroll_y = int(self.scroll_y)
        width, height = self.size
        locations = self._row_locations
        for key in changed:
            index = locations.get(RowKey(key))
            if index is None:
                continue
            y = top + index - scroll_y
            if top <= y < height:
                self.refresh(Region(0, y, width, 1))

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
            signature, build = self._pending.pop(key)
            self._update(key, signature, build)

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
