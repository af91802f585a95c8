"""A DataTable updated in place from keyed rows (the Dolphie recipe).

Each refresh removes the rows that left, updates only the cells that changed, adds the new
rows, and re-sorts only when the order changed; the cursor stays on the same row key.
No ``clear()`` per refresh, so nothing flickers and the cursor never jumps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable


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


Row = tuple[str, Sequence[Text]]


class SyncedTable(DataTable[Any]):
    """A row-cursor DataTable whose content is replaced by :meth:`sync`."""

    #: (label, key, width) of each column.
    COLUMNS: tuple[tuple[str, str, int], ...] = ()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        for label, key, width in self.COLUMNS:
            self.add_column(label, key=key, width=width)

    @property
    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        row_key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        return None if row_key.value is None else str(row_key.value)

    def sync(self, rows: Sequence[Row]) -> None:
        """Make the table show ``rows`` (in this order), touching only what changed."""
        keep = self.cursor_key
        wanted = [key for key, _ in rows]
        wanted_set = set(wanted)
        columns = [c[1] for c in self.COLUMNS]
        with self.app.batch_update():
            for key in [k for k in self._cells if k not in wanted_set]:
                self.remove_row(key)
                del self._cells[key]
            for key, cells in rows:
                new = tuple(cells)
                old = self._cells.get(key)
                if old is None:
                    self.add_row(KeyCell.of(key, new[0]), *new[1:], key=key)
                else:
                    for index, (column, before, after) in enumerate(
                        zip(columns, old, new, strict=True)
                    ):
                        if before != after:
                            value = KeyCell.of(key, after) if index == 0 else after
                            self.update_cell(key, column, value)
                self._cells[key] = new
            if [str(r.key.value) for r in self.ordered_rows] != wanted:
                rank = {key: i for i, key in enumerate(wanted)}
                self.sort(key=lambda values: rank[values[0].row_key])
            if keep is not None and keep in wanted_set:
                index = self.get_row_index(keep)
                if index != self.cursor_row:
                    self.move_cursor(row=index, animate=False)
