"""The direct cell drawing gives exactly the segments DataTable's Rich path gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.padding import Padding
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.renderables.styled import Styled

from tui.widgets.cell_line import cell_line

CONSOLE = Console(width=200, height=50, color_system="truecolor")
STYLES = ["", "dim", "bold green", "yellow", "bold white on red", "green on grey23", "strike dim"]
CHARS = "ab xyz0123456789%·▁▂▇█▏▌…≥°世界-/:"


def rich_line(cell: Text, width: int, pad: int, pre: Style, post: Style) -> list:
    """DataTable._render_cell's drawing of one cell, one line high."""
    options = CONSOLE.options.update_dimensions(width, 1).update(no_wrap=True)
    lines = CONSOLE.render_lines(Styled(Padding(cell, (0, pad)), pre_style=pre, post_style=post),
                                 options)  # fmt: skip
    assert len(lines) == 1
    return lines[0]


@st.composite
def texts(draw: st.DrawFn) -> Text:
    plain = draw(st.text(alphabet=CHARS, max_size=30))
    cell = Text(
        plain,
        style=draw(st.sampled_from(STYLES)),
        justify=draw(st.sampled_from([None, "left", "right", "center", "full", "default"])),
        overflow=draw(st.sampled_from([None, "fold", "crop", "ellipsis"])),
        end=draw(st.sampled_from(["", "\n"])),
    )
    if draw(st.booleans()):  # spans in order, as Text.append makes them (the usual cells)
        for part in draw(st.lists(st.text(alphabet=CHARS, max_size=8), max_size=4)):
            cell.append(part, draw(st.sampled_from(STYLES)) or None)
        return cell
    for _ in range(draw(st.integers(0, 3))):  # any spans, overlapping too
        start = draw(st.integers(0, len(plain)))
        end = draw(st.integers(start, len(plain)))
        cell.stylize(draw(st.sampled_from(STYLES[1:])), start, end)
    return cell


PRE = [
    Style(bgcolor="#1e1e1e") + Style.from_meta({"row": 3, "column": 1}),
    Style(color="#e0e0e0", bgcolor="#262626", bold=True) + Style.from_meta({"row": 0, "column": 0}),
]
POST = [Style.null(), Style(bgcolor="#0178d4"), Style(color="#ffffff") + Style(bgcolor="#0178d4")]


@settings(max_examples=500, deadline=None)
@given(
    cell=texts(),
    width=st.integers(3, 40),
    pad=st.integers(0, 1),
    pre=st.sampled_from(PRE),
    post=st.sampled_from(POST),
)
def test_same_segments_as_rich(cell: Text, width: int, pad: int, pre: Style, post: Style) -> None:
    before = cell.copy()
    fast = cell_line(CONSOLE, cell, width, pad, pre, post)
    assert fast is not None
    # The same segments, merged as lines are (neighbours of one style joined).
    assert fast == list(Segment.simplify(rich_line(cell, width, pad, pre, post)))
    assert cell.plain == before.plain and cell.spans == before.spans  # the cell is not changed


def test_leaves_other_cases_to_rich() -> None:
    pre, post = PRE[0], Style.null()
    assert cell_line(CONSOLE, Text("two\nlines"), 10, 1, pre, post) is None
    assert cell_line(CONSOLE, Text("a\tb"), 10, 1, pre, post) is None
    assert cell_line(CONSOLE, Text("wrap me", no_wrap=False), 10, 1, pre, post) is None
    assert cell_line(CONSOLE, Text("x"), 2, 1, pre, post) is None
