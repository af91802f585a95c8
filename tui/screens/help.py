"""The ``?`` screen: every key of the dashboard, by where it works, read from the bindings
themselves (so it cannot drift from what the keys do)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

#: Keys that are not Textual bindings of ours: the tables' own, and the palette's.
BUILT_IN = (
    ("↑ ↓ pgup pgdn home end", "move the cursor (tables)"),
    ("← →", "scroll a table sideways (the first column stays)"),
    ("click a column title", "sort the jobs by that column (again: reverse)"),
    ("ctrl+p", "command palette: every action by name, Screenshot, theme..."),
    ("tab / shift+tab", "next / previous pane"),
)


def key_names(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    names = {"plus": "+", "minus": "-", "equals_sign": "=", "question_mark": "?",
             "space": "space", "slash": "/", "escape": "esc"}  # fmt: skip
    return " ".join(names.get(k, k) for k in binding.key.split(","))


def described(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """(keys, what they do) of the bindings that have a description."""
    rows = []
    for binding in bindings:
        if isinstance(binding, Binding) and binding.description:
            what = binding.description
            if binding.tooltip:
                what = f"{what}: {binding.tooltip}"
            rows.append((key_names(binding), what))
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss_help", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        super().__init__(classes="dialog")
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(Text("Keys", style="bold"), id="question")
            yield Static(self.text(), id="help-keys")

    def text(self) -> Text:
        out = Text()
        for i, (title, rows) in enumerate([*self.sections, ("Tables and more", list(BUILT_IN))]):
            if i:
                out.append("\n")
            out.append(f"{title}\n", style="bold underline")
            for keys, what in rows:
                out.append(f"  {keys:<14}", style="bold cyan")
                out.append(f"{what}\n")
        return out

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
