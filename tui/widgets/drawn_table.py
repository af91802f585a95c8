"""A DataTable that redraws only what changed: the drawing half of the dashboard's tables.

DataTable keys its render caches on one counter that every change bumps, and redraws the whole
table after any change: every visible cell through Rich's ``Styled(Padding(Text))``, each line
with its component styles looked up again. Here each cell is drawn once per version of it
(straight to segments for a one-line ``Text``, see :mod:`tui.widgets.cell_line`), the
component styles are looked up once per frame, and only the lines of rows that changed, or that
show another row after a reorder, are redrawn. What is drawn is the same, segment for segment.

The table that fills it (:class:`~tui.widgets.synced_table.SyncedTable`) says what changed:
:meth:`DrawnTable._set_cell` for a cell, :meth:`DrawnTable._new_version` when a cell is added,
:meth:`DrawnTable._remove_rows` for the rows that left, :meth:`DrawnTable._reorder` for a new
order, ``_rows_changed`` when rows came or went, then :meth:`DrawnTable._redraw_changed_cells`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.cache import LRUCache
from textual.color import Color
from textual.filter import LineFilter
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import CellKey, ColumnKey, RowKey

from tui.widgets.cell_line import append_merged, cell_line
from tui.widgets.table_lines import TableLines

#: Rendered cells kept per table: a few screens' worth (a 160x48 screen shows about 400 cells
#: and 40 rows), for a scroll back and forth. No more: an entry outlives the version of its
#: cell it was drawn for (most cells change every second), and each one kept is a few dozen
#: objects the garbage collector walks again and again until the cache drops it (at 4,000
#: cells and 1,000 lines, the collector ran in one refresh in nine at 240 GPUs; now in one
#: in fifty).
RENDER_CACHE_SIZE = 1200
#: Drawn lines kept per table (see RENDER_CACHE_SIZE).
LINE_CACHE_SIZE = 250
#: What DataTable adds to the style of the fixed columns' cells.
_FIXED_META = Style.from_meta({"fixed": True})


class DrawnTable(DataTable[Any]):
    """A DataTable whose rows are one line high, redrawn as little as their changes allow."""

    def __init__(self, **kwargs: Any) -> None:
        #: Whole drawn lines, keyed on what they show (see _render_line); made first, since
        #: DataTable clears its caches (see _clear_caches) while it is made.
        self._drawn_lines: LRUCache[tuple[object, ...], list[Segment]] = LRUCache(LINE_CACHE_SIZE)
        #: The style of the blank past the last column, per row index and look.
        self._extends: LRUCache[tuple[object, ...], Style] = LRUCache(LINE_CACHE_SIZE)
        super().__init__(**kwargs)
        #: Textual's per-line cache of this widget, drawing our lines' frame more directly.
        self._styles_cache = TableLines(self.content_line)
        #: Per-cell render cache that survives updates of other cells (see _render_cell).
        self._cell_lines: LRUCache[tuple[object, ...], Any] = LRUCache(RENDER_CACHE_SIZE)
        #: (row key, column key) -> the version of that cell (see _new_version).
        self._cell_versions: dict[tuple[str, str], int] = {}
        self._version_counter = 0
        #: (row index, column index) -> the style carrying that place (see _draw_cell).
        self._meta_styles: dict[tuple[int, int], Style] = {}
        #: Rows whose cells were changed in place since the table was last asked to redraw,
        #: and whether rows were added or removed since (then all of it is redrawn).
        self._changed_rows: set[str] = set()
        self._rows_changed = False
        #: Component styles looked up while one frame is drawn (see render_lines); None
        #: between frames.
        self._frame_styles: dict[str, Style] | None = None
        #: Row key -> the version of what it shows (any of its cells changed: a new one).
        self._row_versions: dict[str, int] = {}
        #: What every data line of the frame being drawn shares (see _line_frame); False
        #: when the table is not the simple case of _line_segments, None before it is known.
        self._frame_lines: _LineFrame | Literal[False] | None = None

    def render_lines(self, crop: Region) -> list[Strip]:
        self._begin_frame()
        try:
            return super().render_lines(crop)
        finally:
            self._end_frame()

    def _begin_frame(self) -> None:
        # DataTable looks up its component styles (each walks the DOM up to the screen) and
        # its settings for every line it draws; within one frame they cannot change, so each
        # is looked up once.
        self._frame_styles = {}
        self._frame_lines = None

    def _end_frame(self) -> None:
        self._frame_styles = None
        self._frame_lines = None

    def _line_frame(self) -> _LineFrame | Literal[False]:
        """What every data line of this frame shares, looked up once (False when the table is
        not the simple case of _line_segments)."""
        frame = self._frame_lines
        if frame is not None:
            return frame
        if (
            self._frame_styles is None
            or self.cursor_type != "row"
            or self.fixed_rows
            or not self.show_header
            or self.header_height != 1
            or (self._labelled_row_exists and self.show_row_labels)
        ):
            self._frame_lines = False
            return False
        ordered = self.ordered_columns
        widths = tuple(column.get_render_width(self) for column in ordered)
        fixed_columns = min(self.fixed_columns, len(widths))
        look = self._look()
        width = self.size.width
        frame = self._frame_lines = _LineFrame(
            width=width,
            widths=widths,
            columns=tuple(str(column.key.value) for column in ordered),
            cursor_row=self.cursor_coordinate.row,
            hover_row=self.hover_coordinate.row,
            fixed_columns=fixed_columns,
            fixed_style=(
                self._component_style("datatable--fixed") + _FIXED_META if fixed_columns else None
            ),
            label_width=self._row_label_column_width,
            look=look,
            key=(width, widths, self.show_cursor, *look),
        )
        return frame

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

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._drawn_lines.clear()
        self._extends.clear()

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        # DataTable's own, for a data line of these tables unscrolled sideways (see
        # _line_segments); any other line as DataTable draws it.
        segments = None if x1 else self._line_segments(y, base_style, (), None)
        if segments is None:
            return super()._render_line(y, x1, x2, base_style)
        return Strip(segments, self.size.width)

    def content_line(
        self, y: int, width: int, filters: tuple[LineFilter, ...], background: Color
    ) -> list[Segment] | None:
        """Content line ``y`` as ``render_line(y)`` draws it, through ``filters``, for
        :class:`~tui.widgets.table_lines.TableLines`; None when it is not a data line of the
        simple case (or not ``width`` cells wide): then it is drawn through ``render_line``."""
        scroll_x, scroll_y = self.scroll_offset
        if scroll_x or y < 1 or width != self.size.width:
            return None
        # DataTable.render_line: lines under the header (no fixed rows here) scroll.
        return self._line_segments(y + scroll_y, self.rich_style, filters, background)

    def _line_segments(
        self,
        y: int,
        base_style: Style,
        filters: tuple[LineFilter, ...],
        background: Color | None,
    ) -> list[Segment] | None:
        """Data line ``y`` of these tables (one-line rows under a one-line header, a row
        cursor, no fixed rows or labels) as DataTable assembles it, through ``filters``; None
        for any other line.

        Without DataTable's generic steps: the row found by its index (not through the offsets
        of every row), the fixed column drawn once (not also into the scrolled part to be
        cropped off), widths looked up once per frame, cells joined with only their edges
        merged (each cell is kept merged). A line is kept until its row changes (DataTable's
        line cache is dropped at every cell update), so a full redraw after rows come or go
        draws only the lines that show something else.
        """
        frame = self._line_frame() if y >= 1 else False
        if not frame:
            return None
        index = y - 1
        row_key = self._row_locations.get_key(index)
        if row_key is None or self.rows[row_key].height != 1:
            return None
        cursor = frame.cursor_row == index
        hover = frame.hover_row == index
        row = str(row_key.value)
        line_key = (row, self._row_versions.get(row, 0), index, cursor, hover, base_style,
                    frame.key, filters, background)  # fmt: skip
        segments = self._drawn_lines.get(line_key)
        if segments is not None:
            return segments
        # Each cell from the cell cache, under the key _render_cell gives it.
        look = frame.look
        versions = self._cell_versions
        cached = self._cell_lines.get
        widths = frame.widths
        fixed_columns = frame.fixed_columns
        fixed_style = frame.fixed_style
        row_style = self._get_row_style(index, base_style)
        segments = []
        table_width = frame.label_width
        for column_index, (column, width_here) in enumerate(
            zip(frame.columns, widths, strict=True)
        ):
            if column_index < fixed_columns:
                assert fixed_style is not None
                style = fixed_style
            else:
                style = row_style
                table_width += width_here
            cell = (row, column)
            key = (cell, versions.get(cell, 0), index, style, width_here, cursor, hover, *look)
            lines = cached(key)
            if lines is None:
                lines = self._drawn_cell(key, index, column_index, style, width_here, cursor, hover)
            _join(segments, lines[0])
        width = frame.width
        # The row's style carried on to the widget's edge. DataTable makes this blank as
        # long as if the fixed columns were not there and crops the line after; it is made
        # as long as it shows, so the line needs no crop (unless it is wider than the widget).
        blank = width - table_width - sum(widths[:fixed_columns])
        if blank > 0:
            _join(
                segments,
                [Segment(" " * blank, self._extend_style(index, row_style, cursor, hover, frame))],
            )
        if blank < 0:  # cropped to the widget, as DataTable does
            segments = list(Strip(segments).adjust_cell_length(width, base_style).simplify())
        for line_filter in filters:
            assert background is not None
            segments = line_filter.apply(segments, background)
        self._drawn_lines[line_key] = segments
        return segments

    def _look(self) -> tuple[object, ...]:
        """What else a drawn cell depends on: hover shown, focus and the like, the theme (the
        last part of a cell's cache key, the same in _render_cell and _render_line)."""
        return (self._show_hover_cursor, self._pseudo_class_state, self.app.theme)

    def _extend_style(
        self, index: int, row_style: Style, cursor: bool, hover: bool, frame: _LineFrame
    ) -> Style:
        """The style of the blank past the last column, as DataTable gives it."""
        key = (index, row_style, cursor, hover, frame.key)
        style = self._extends.get(key)
        if style is None:
            extend_style, _ = self._get_styles_to_render_cell(
                False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
                False, False,
            )  # fmt: skip
            style = row_style + extend_style
            style += Style.from_meta({"row": index, "column": 0, "out_of_bounds": True})
            self._extends[key] = style
        return style

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
        key = (cell, version, row_index, base_style, width, cursor, hover, *self._look())
        lines = self._cell_lines.get(key)
        if lines is None:
            lines = self._drawn_cell(key, row_index, column_index, base_style, width, cursor, hover)
        return lines

    def _drawn_cell(
        self,
        key: tuple[object, ...],
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool,
        hover: bool,
    ) -> Any:
        """Draw a cell that is not in the cache, and keep it there under ``key``."""
        line = self._draw_cell(row_index, column_index, base_style, width, cursor, hover)
        # Merged (neighbours of one style joined), as DataTable's lines are: a line is then
        # the cells joined, merged only where two meet (see _join). cell_line merges its own.
        if line is None:  # not one line of Text: Rich draws it
            drawn = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            lines = [list(Segment.simplify(cell_line)) for cell_line in drawn]
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
        place = (row_index, column_index if header else 0)
        meta = self._meta_styles.get(place)
        if meta is None:
            meta = Style.from_meta({"row": place[0], "column": place[1]})
            self._meta_styles[place] = meta
        base_style += meta
        return cell_line(
            self.app.console,
            cell,
            width,
            self.cell_padding,
            base_style + component_style,
            post_style,
        )

    def _remove_rows(self, keys: list[str]) -> None:
        """``DataTable.remove_row`` for many rows at once.

        DataTable rebuilds its whole row index, and moves the cursor, for each row removed: at
        240 GPUs with short jobs, dozens of jobs leave the jobs pane each second, each costing a
        pass over the page. Here the index is rebuilt once, keeping the order of the rows left.
        """
        gone = {RowKey(key) for key in keys}
        locations = self._row_locations
        kept = sorted(
            (key for key in locations if key not in gone), key=lambda k: locations.get(k) or 0
        )
        self._row_locations = TwoWayDict({key: place for place, key in enumerate(kept)})
        for row_key in gone:
            for column_key in self._data.get(row_key, {}):
                self._updated_cells.discard(CellKey(row_key, column_key))
            self.rows.pop(row_key, None)
            self._data.pop(row_key, None)
        self._require_update_dimensions = True
        self.check_idle()
        # As remove_row does: the cursor and hover are validated against the new row count.
        self.cursor_coordinate = self.cursor_coordinate
        self.hover_coordinate = self.hover_coordinate
        self._update_count += 1
        # Only what is drawn: the scrollable size is set again when the table is next idle
        # (see _update_dimensions), and a change of it lays the screen out again then. A
        # layout refresh here would redraw the whole screen for every removal.
        self.refresh()

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # DataTable measures every cell of each new row, for the columns that size themselves
        # to their content. These tables give every column its width, and rows are one line
        # high: only the scrollable size needs setting (dozens of rows arrive every second
        # with short jobs, each measured cell by cell for nothing).
        rows = [self.rows.get(key) for key in new_rows]
        if any(column.auto_width for column in self.columns.values()) or any(
            row is not None and (row.auto_height or row.label is not None) for row in rows
        ):
            super()._update_dimensions(new_rows)
            return
        width = sum(column.get_render_width(self) for column in self.columns.values())
        header_height = self.header_height if self.show_header else 0
        self.virtual_size = Size(
            width + self._row_label_column_width, self._total_row_height + header_height
        )

    def _new_version(self, key: str, column: str) -> None:
        # Versions come from one counter: a row removed and added again under the same key
        # never meets a render of its former self in the cache.
        self._version_counter += 1
        self._cell_versions[(key, column)] = self._version_counter
        self._row_versions[key] = self._version_counter

    def _set_cell(self, key: str, column: str, value: Text) -> None:
        # DataTable.update_cell, less the redraw of the whole table it asks for each cell:
        # the table is redrawn once, after all the cells of a refresh are set (the cells that
        # did not change come from the cell cache).
        self._data[RowKey(key)][ColumnKey(column)] = value
        self._update_count += 1
        self._changed_rows.add(key)
        self._version_counter += 1
        self._row_versions[key] = self._version_counter

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

    def _reorder(self, before: list[str], wanted: list[str], window: range) -> None:
        """Put the rows, now in the order of ``before``, in the order of ``wanted`` (the same
        keys, each once).

        DataTable.sort would redraw the whole table; here only the lines on screen that now
        show another row are redrawn (a reorder below the screen redraws nothing), and only
        the rows between the first and the last that moved get a new place (a job bumped a few
        places moves a few rows, not the whole page).
        """
        first = next(
            (i for i, (a, b) in enumerate(zip(before, wanted, strict=True)) if a != b), None
        )
        if first is None:
            return
        last = len(wanted) - next(
            i
            for i, (a, b) in enumerate(zip(reversed(before), reversed(wanted), strict=True))
            if a != b
        )
        locations = self._row_locations
        shown = [locations.get_key(index) for index in window]
        for index in range(first, last):
            locations[RowKey(wanted[index])] = index
        self._update_count += 1
        for index, was in zip(window, shown, strict=True):
            now = locations.get_key(index)
            if now is not None and now != was and now.value is not None:
                self._changed_rows.add(now.value)


def _join(line: list[Segment], cell: list[Segment]) -> None:
    """Append the (merged) segments of ``cell`` to the (merged) ``line``, the two that meet
    merged as ``Segment.simplify`` would: only the edge needs looking at."""
    if cell:
        append_merged(line, cell[0])
        line.extend(cell[1:])


@dataclass(frozen=True, slots=True)
class _LineFrame:
    """What every data line of one frame shares (see DrawnTable._line_frame)."""

    width: int
    widths: tuple[int, ...]
    columns: tuple[str, ...]
    cursor_row: int
    hover_row: int
    fixed_columns: int
    fixed_style: Style | None
    label_width: int
    #: What a cell's drawing depends on besides itself (see DrawnTable._look).
    look: tuple[object, ...]
    #: The part of a line's cache key that is the same for every line of the frame.
    key: tuple[object, ...]
