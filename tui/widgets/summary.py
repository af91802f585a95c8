"""The top line: which fleet this is, and its totals at a glance."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from fleetq import Settings
from fleetq.connection import safe_url
from tui.snapshot import Snapshot


class FleetSummary(Static):
    def __init__(self, settings: Settings, *, readonly: bool, id: str | None = None) -> None:
        super().__init__(id=id)
        self.settings = settings
        self.readonly = readonly
        self._last: Text | None = None

    def on_mount(self) -> None:
        self.update(self._head())

    def _head(self) -> Text:
        text = Text("fleetq ", style="bold")
        text.append(self.settings.namespace, style="bold cyan")
        text.append(f" @ {safe_url(self.settings.redis_url)}", style="dim")
        if self.readonly:
            text.append("  READ-ONLY", style="bold yellow")
        return text

    def show(self, snapshot: Snapshot) -> None:
        hosts = snapshot.hosts
        online = [h for h in hosts if h.online]
        gpus = [g for h in online for g in h.gpus]
        busy = sum(1 for g in gpus if g.job is not None)
        unhealthy = sum(1 for g in gpus if g.health not in (None, "healthy"))
        drained = sum(1 for g in gpus if g.drained or g.host_drained)
        queued = sum(s.queued for s in snapshot.services)
        running = sum(s.running for s in snapshot.services)
        done = sum(s.completed_last_minute for s in snapshot.services)
        failed = sum(s.failed_last_minute for s in snapshot.services)
        text = self._head()
        text.append(" │ ", style="dim")
        text.append(f"{len(online)}/{len(hosts)} hosts", style="" if len(online) == len(hosts)
                    else "bold red")  # fmt: skip
        text.append(f" · {len(gpus)} GPUs · {busy} busy")
        if drained:
            text.append(f" · {drained} drained", style="magenta")
        if unhealthy:
            text.append(f" · {unhealthy} unhealthy", style="yellow")
        text.append(" │ ", style="dim")
        text.append(f"{queued:,} queued · {running:,} running · ")
        text.append(f"{done} done/min", style="green")
        text.append(" · ")
        text.append(f"{failed} failed/min", style="bold red" if failed else "")
        if text != self._last:
            self._last = text
            # One line, as wide as the screen whatever it says: no layout pass (which would
            # redraw the whole screen each second the counts change).
            self.update(text, layout=False)
