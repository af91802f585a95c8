"""Queues per service: depth, running, paused, oldest wait, completed and failed per minute, and
the tenants with the most jobs (queued/running)."""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual.binding import Binding

from fleetq.model import ServiceStats
from tui.latency import Latency, clear_time_ms
from tui.snapshot import Snapshot
from tui.widgets.format import DASH, age
from tui.widgets.synced_table import SyncedTable

TENANTS_WIDTH = 26


class QueueTable(SyncedTable):
    BINDINGS = [
        Binding(
            "p",
            "screen.toggle_pause",
            "Pause/resume",
            tooltip="pause (asks first) or resume the service",
        )
    ]
    COLUMNS = (
        ("Service", "service", 12),
        ("Queued", "queued", 9),
        ("Retry wait", "delayed", 10),
        ("Running", "running", 8),
        ("State", "state", 8),
        ("Tenants queued/running", "tenants", TENANTS_WIDTH),
        ("Oldest wait", "oldest", 11),
        ("Wait p50/90/99", "latency", 16),
        ("Clears in", "clears", 9),
        ("Done/min", "done_min", 8),
        ("Failed/min", "failed_min", 10),
        ("Completed", "completed", 10),
        ("Failed", "failed", 8),
        ("Cancelled", "cancelled", 9),
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.services: dict[str, ServiceStats] = {}
        #: Who paused each paused service (shown under the table for the selected one).
        self.paused_by: dict[str, str] = {}
        self._snapshot: Snapshot | None = None

    def show(self, snapshot: Snapshot) -> None:
        self.services = {s.service: s for s in snapshot.services}
        self.paused_by = {
            s.service: by
            for s in snapshot.services
            if s.paused and (by := snapshot.changed_by.get(f"paused:{s.service}"))
        }
        self._snapshot = snapshot
        self.sync([(s.service, s) for s in snapshot.services])
        self._show_note()

    def row_signature(self, item: ServiceStats) -> tuple[object, ...]:
        snapshot = self._snapshot
        assert snapshot is not None
        return _signature(item, snapshot.now_ms, snapshot.latency.get(item.service))

    def row_cells(self, item: ServiceStats) -> tuple[Text, ...]:
        snapshot = self._snapshot
        assert snapshot is not None
        return _cells(item, snapshot.now_ms, snapshot.latency.get(item.service))

    def on_data_table_row_highlighted(self) -> None:
        self._show_note()

    def _show_note(self) -> None:
        # Who paused the service under the cursor (the audit trail of pauses).
        key = self.cursor_key
        by = self.paused_by.get(key) if key is not None else None
        note = escape(f"{key} paused by {by}") if by else ""
        if note != self.border_subtitle:
            self.border_subtitle = note

    @property
    def selected(self) -> ServiceStats | None:
        key = self.cursor_key
        return None if key is None else self.services.get(key)


def _signature(s: ServiceStats, now_ms: int, latency: Latency | None) -> tuple[object, ...]:
    return (s, _wait(s, now_ms), latency)


def _wait(s: ServiceStats, now_ms: int) -> str | None:
    wait = s.oldest_wait_ms(now_ms)
    return None if wait is None else age(wait)


def latency_text(latency: Latency | None) -> Text:
    if latency is None:
        return DASH
    return Text(
        f"{age(latency.p50_ms)}/{age(latency.p90_ms)}/{age(latency.p99_ms)}", justify="right"
    )


def clears_text(s: ServiceStats) -> Text:
    clear = clear_time_ms(s)
    if clear is None:
        return DASH
    if s.paused:
        return Text("paused", style="yellow")
    if clear < 0:
        return Text("stalled", style="bold red")
    return Text(age(clear), justify="right", style="yellow" if clear > 3_600_000 else "")


def tenants_text(s: ServiceStats, width: int = TENANTS_WIDTH) -> Text:
    """The busiest tenants as ``name queued/running`` that fit in ``width``, then ``+N`` more."""
    if not s.tenants:
        return DASH
    busiest = sorted(s.tenants, key=lambda t: (-(t.queued + t.running), t.tenant))
    parts: list[str] = []
    for i, t in enumerate(busiest):
        part = f"{t.tenant} {t.queued:,}/{t.running:,}"
        rest = len(busiest) - i - 1
        room = width - (len(f" +{rest}") if rest else 0)
        if parts and len("  ".join([*parts, part])) > room:
            break
        parts.append(part)
    more = len(busiest) - len(parts)
    return Text("  ".join(parts) + (f" +{more}" if more else ""), no_wrap=True)


def _cells(s: ServiceStats, now_ms: int, latency: Latency | None = None) -> tuple[Text, ...]:
    wait = s.oldest_wait_ms(now_ms)
    failed_rate = Text(str(s.failed_last_minute), style="bold red" if s.failed_last_minute else "")
    cells = (
        Text(s.service, style="bold"),
        Text(f"{s.queued - s.delayed:,}", justify="right"),
        Text(f"{s.delayed:,}", justify="right"),
        Text(f"{s.running:,}", justify="right"),
        Text("PAUSED", style="bold yellow") if s.paused else Text("active", style="green"),
        tenants_text(s),
        DASH if wait is None else Text(age(wait), style="yellow" if wait > 300_000 else ""),
        latency_text(latency),
        clears_text(s),
        Text(str(s.completed_last_minute), justify="right"),
        failed_rate,
        Text(f"{s.completed:,}", justify="right"),
        Text(f"{s.failed:,}", justify="right"),
        Text(f"{s.cancelled:,}", justify="right"),
    )
    return cells
