"""One table cell drawn straight to segments, as DataTable draws it, without Rich's layers.

DataTable draws each cell with ``console.render_lines(Styled(Padding(text, (0, pad)), pre,
post))``: five nested generators, a copy and a join of the text, and two passes of line
splitting and cropping, for what is, in our tables, always one line of one ``Text``. This module
gives the same segments (the same text, the same styles, in the same pieces) for that case at a
fraction of the cost; any other case (several lines, tabs, wrapping asked for, no room) is left
to Rich, and :func:`cell_line` says so by returning ``None``.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.containers import Lines
from rich.segment import Segment
from rich.style import Style
from rich.text import Span, Text

_NULL = Style.null()


def cell_line(
    console: Console, cell: Text, width: int, pad: int, pre: Style, post: Style
) -> list[Segment] | None:
    """The segments of one padded, styled, single-line cell ``width`` cells wide, or ``None``
    when the cell is not the simple case (then draw it through Rich).

    Equal to the one line of ``console.render_lines(Styled(Padding(cell, (0, pad)), pre, post),
    options)`` for options of that width, one line high and ``no_wrap``, merged as
    ``Segment.simplify`` merges it.
    """
    inner = width - 2 * pad
    plain = cell.plain
    if inner < 1 or cell.no_wrap is False or "\n" in plain or "\t" in plain:
        return None
    # Text.__rich_console__ with the console's default options: justify and overflow are the
    # text's own or Rich's defaults; no_wrap comes from the one-line row.
    justify = cell.justify or "default"
    overflow = cell.overflow or "fold"
    line = cell
    length = cell.cell_len
    if justify == "right" and not cell._spans and length <= inner:
        # The usual numeric cell. Lines.justify("right") strips the end, then pads the start
        # with spaces in the text's style: with no spans, one segment of the inner width.
        stripped = plain.rstrip()
        text = " " * (inner - cell_len(stripped)) + stripped
        style = cell.style
        segments = [Segment(text, console.get_style(style))] if style else [Segment(text)]
        return _styled(segments, pad, pre, post)
    if justify != "default" or length > inner:
        # Text.wrap on a copy (as Text.split makes): justify, then truncate.
        line = cell.copy()
        Lines([line]).justify(console, inner, justify=justify, overflow=overflow)
        line.truncate(inner, overflow=overflow)
        length = line.cell_len
    segments = _render(console, line)
    # Padding's inner render_lines: crop or pad the line to the inner width (style "none").
    if length < inner:
        segments.append(Segment(" " * (inner - length), _NULL))
    elif length > inner:  # only a text that truncate left over width (ignore overflow)
        segments = Segment.adjust_line_length(segments, inner, style=_NULL, pad=True)
    return _styled(segments, pad, pre, post)


def _styled(segments: list[Segment], pad: int, pre: Style, post: Style) -> list[Segment]:
    """Padding's sides around the line, then Styled: the pre style under each segment's own,
    the post style over it."""
    if pad:
        side = Segment(" " * pad, _NULL)
        segments = [side, *segments, side]
    applied = _APPLIED
    out: list[Segment] = []
    for text, style, _ in segments:
        key = (pre, style, post)
        combined = applied.get(key)
        if combined is None:
            if len(applied) >= _APPLIED_MAX:
                applied.clear()
            combined = pre + style if pre else style
            if post:
                combined = combined + post if combined else post
            applied[key] = combined
        append_merged(out, Segment(text, combined))
    return out


def append_merged(line: list[Segment], segment: Segment) -> None:
    """Append ``segment`` to ``line``, joined to the last one when their styles are equal:
    a line built this way is as ``Segment.simplify`` makes it."""
    if line:
        last = line[-1]
        if last.style is segment.style or last.style == segment.style:
            line[-1] = Segment(last.text + segment.text, last.style)
            return
    line.append(segment)


#: (pre, style, post) -> the style a segment gets: each cell of a table draws its segments
#: over the same few pre and post styles (one per row place and look), so the two additions
#: (each a hashed cache lookup in Rich) are mostly looked up here in one.
_APPLIED: dict[tuple[Style | None, Style | None, Style | None], Style | None] = {}
_APPLIED_MAX = 4096


def _render(console: Console, line: Text) -> list[Segment]:
    """``Text("\\n").join([line]).render(console)``: the text's own style becomes its first
    span, under the spans it has."""
    plain = line.plain
    style = line.style
    spans = line._spans
    if not spans:
        if not style:
            return [Segment(plain)]
        # One span over the whole text: one segment in that style (none when it is empty).
        return [Segment(plain, console.get_style(style))] if plain else []
    segments = _in_order(console, plain, style, spans)
    if segments is not None:
        return segments
    joined = Text(plain, end="")
    if style:
        joined._spans = [Span(0, len(plain), style), *spans]
    else:
        joined._spans = list(spans)
    return list(joined.render(console))


def _in_order(
    console: Console, plain: str, style: str | Style, spans: list[Span]
) -> list[Segment] | None:
    """Text.render for the usual spans (as Text.append and Text.assemble make them): in
    order, not overlapping, not empty, within the text. Each character is then under the
    text's style and at most one span, and a segment starts wherever a span starts or ends,
    as Rich cuts them. None for any other spans."""
    get_style = console.get_style
    base = get_style(style, default=_NULL) if style else _NULL
    out = []
    at = 0
    for start, end, span_style in spans:
        if start < at or end <= start:
            return None
        if start > at:
            out.append(Segment(plain[at:start], base))
        out.append(Segment(plain[start:end], base + get_style(span_style, default=_NULL)))
        at = end
    if at > len(plain) or not plain:
        return None
    if at < len(plain):
        out.append(Segment(plain[at:], base))
    return out
