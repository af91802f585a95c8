"""The banner shown while Redis cannot be read; hidden again by the next good refresh."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class ConnectionBanner(Static):
    DEFAULT_CSS = """
    ConnectionBanner { display: none; }
    ConnectionBanner.-down { display: block; }
    """

    def show_failure(self, error: str, retry_in_s: float, failures: int) -> None:
        text = Text("⚠ REDIS UNREACHABLE ", style="bold")
        text.append(error)
        text.append(f"  (retry {failures}, next in {retry_in_s:.1f}s; showing the last data read)")
        self.update(text)
        self.add_class("-down")

    def clear_failure(self) -> None:
        if self.has_class("-down"):
            self.remove_class("-down")

    @property
    def down(self) -> bool:
        return self.has_class("-down")
