"""The frame around a table's lines (border, line filters), added without Textual's general steps.

Textual draws each line of a widget through ``StylesCache.render_line``, which handles every
CSS case (borders with titles, padding, outlines, hatch, tint, opacity), then applies the app's
line filters (ANSI colours to true colour) to the whole line. For a table line that changed,
that costs about twice what drawing the line itself costs: the case is looked up again for
each line, a border style is built twice, several intermediate strips are made, and the filter
walks every segment of the line.

Our tables are one common case: a border on both sides, no padding, no outline, no hatch, no
tint, full opacity. :class:`TableLines` draws the content lines of that case itself, and
everything else (the border's top and bottom rows, any other case) through Textual. The table
gives each line already through the filters (and keeps it so, until its row changes), the
border's sides are added, and the result is marked as filtered (:class:`FilteredStrip`) so
that the filters are not applied again. What is drawn is the same, segment for segment
(tests/tui/test_render_cache.py compares the two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from textual._border import get_box
from textual._styles_cache import StylesCache
from textual.color import Color
from textual.filter import LineFilter
from textual.geometry import Size, Spacing
from textual.strip import Strip
from textual.style import Style

#: A widget's content line ``y``, ``width`` cells wide, through the line filters, for a
#: background: its segments, or None when the widget has no such line (then its
#: ``render_line`` draws it). See ``DrawnTable.content_line``.
ContentLine = Callable[[int, int, tuple[LineFilter, ...], Color], "list[Segment] | None"]


class FilteredStrip(Strip):
    """A strip whose segments have been through ``filters`` (in that order) already: applying
    one of them again gives the strip itself."""

    __slots__ = ["_filters"]

    def __init__(
        self, segments: list[Segment], cell_length: int, filters: tuple[LineFilter, ...]
    ) -> None:
        super().__init__(segments, cell_length)
        self._filters = filters

    def apply_filter(self, filter: LineFilter, background: Color) -> Strip:
        if filter in self._filters:
            return self
        return super().apply_filter(filter, background)

    def crop(self, start: int, end: int | None = None) -> Strip:
        # The crop a table line meets in every frame: its last cell (the border's right side,
        # under the scrollbar) cut off. Strip.crop would measure every segment to find it.
        segments = self._segments
        if (
            segments
            and start == 0
            and end == self.cell_length - 1
            and cell_len(segments[-1].text) == 1
        ):
            cropped = self._crop_cache.get((start, end))
            if cropped is None:
                cropped = self._crop_cache[(start, end)] = FilteredStrip(
                    segments[:-1], end, self._filters
                )
            return cropped
        return super().crop(start, end)


@dataclass(frozen=True, slots=True)
class _Frame:
    """What the content lines of one render of the common case share: the border's sides
    (filtered), the filters, the background, the content's place."""

    filters: tuple[LineFilter, ...]
    background: Color
    first: Segment
    last: Segment
    top: int
    content_height: int
    content_width: int


class TableLines(StylesCache):
    """A widget's styles cache that draws the content lines of a plainly bordered widget
    (see the module's docstring) without the general steps; any other line as Textual does."""

    def __init__(self, content_line: ContentLine | None = None) -> None:
        super().__init__()
        #: The widget's own source of filtered content lines, tried first (see ContentLine).
        self._content_source = content_line
        #: What the lines of the render under way share, when it is the common case.
        self._frame: _Frame | None = None
        #: The border's side segments, filtered, per what they depend on.
        self._sides: dict[tuple[object, ...], tuple[Segment, Segment]] = {}

    def clear(self) -> None:
        super().clear()
        self._sides.clear()

    def render(  # type: ignore[override]
        self,
        styles: Any,
        size: Size,
        base_background: Color,
        background: Color,
        render_content_line: Callable[[int], Strip],
        filters: Sequence[LineFilter],
        border_title: Any,
        border_subtitle: Any,
        content_size: Size | None = None,
        padding: Spacing | None = None,
        crop: Any = None,
        opacity: float = 1.0,
        *args: Any,
        **kwargs: Any,
    ) -> list[Strip]:
        self._frame = self._common_case(
            styles, base_background, background, tuple(filters),
            size if content_size is None else content_size,
            styles.padding if padding is None else padding, opacity,
        )  # fmt: skip
        try:
            return super().render(
                styles, size, base_background, background, render_content_line, filters,
                border_title, border_subtitle, content_size, padding, crop, opacity,
                *args, **kwargs,
            )  # fmt: skip
        finally:
            self._frame = None

    def _common_case(
        self,
        styles: Any,
        base_background: Color,
        background: Color,
        filters: tuple[LineFilter, ...],
        content_size: Size,
        padding: Spacing,
        opacity: float,
    ) -> _Frame | None:
        """The frame of the common case (see the module), or None when this render is not."""
        top, right, bottom, left = padding
        if top or right or bottom or left or opacity != 1.0:
            return None
        (
            (border_top, _),
            (border_right, right_color),
            _,
            (border_left, left_color),
        ) = styles.border
        if not (border_left and border_right):
            return None
        if (
            any(edge for edge, _ in styles.outline)
            or styles.text_opacity != 1.0
            or styles.tint.a
            or (styles.has_rule("hatch") and styles.hatch != "none")
        ):
            return None
        key = (border_left, left_color, border_right, right_color, base_background,
               background, filters)  # fmt: skip
        sides = self._sides.get(key)
        if sides is None:
            sides = self._sides[key] = self._border_sides(
                border_left, left_color, border_right, right_color, base_background,
                background, filters,
            )  # fmt: skip
        return _Frame(
            filters, background, sides[0], sides[1], 1 if border_top else 0,
            content_size.height, content_size.width,
        )  # fmt: skip

    def render_line(  # type: ignore[override]
        self,
        styles: Any,
        y: int,
        size: Size,
        content_size: Size,
        padding: Spacing,
        base_background: Color,
        background: Color,
        render_content_line: Callable[[int], Strip],
        *args: Any,
    ) -> Strip:
        frame = self._frame
        if frame is not None and background is frame.background:
            content_y = y - frame.top
            if 0 <= content_y < frame.content_height:  # not the border's top or bottom
                line = self._content_line(frame, content_y, render_content_line)
                if line is not None:
                    return FilteredStrip([frame.first, *line, frame.last], size.width,
                                         frame.filters)  # fmt: skip
        return super().render_line(
            styles, y, size, content_size, padding, base_background, background,
            render_content_line, *args,
        )  # fmt: skip

    def _content_line(
        self, frame: _Frame, y: int, render_content_line: Callable[[int], Strip]
    ) -> Iterable[Segment] | None:
        """Content line ``y`` through the filters: from the widget's source, else its
        ``render_line``; None when it is not as wide as the content."""
        if self._content_source is not None:
            line = self._content_source(y, frame.content_width, frame.filters, frame.background)
            if line is not None:
                return line
        strip = render_content_line(y)
        if strip.cell_length != frame.content_width:
            return None
        for line_filter in frame.filters:
            strip = strip.apply_filter(line_filter, frame.background)
        return strip

    def _border_sides(
        self,
        border_left: str,
        left_color: Color,
        border_right: str,
        right_color: Color,
        base_background: Color,
        background: Color,
        filters: tuple[LineFilter, ...],
    ) -> tuple[Segment, Segment]:
        """The border's left and right segments of a content line, as Textual draws them,
        through the line filters."""
        inner, outer = self.get_inner_outer(base_background, background)
        left = get_box(border_left, inner, outer, Style(foreground=base_background + left_color))
        right = get_box(border_right, inner, outer, Style(foreground=base_background + right_color))
        sides = Strip([left[1][0], right[1][2]])
        for line_filter in filters:
            sides = sides.apply_filter(line_filter, background)
        first, last = list(sides)
        return first, last
