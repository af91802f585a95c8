"""The job detail screen; it shows what the poller reads about one job (escape goes back)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer

from fleetq import JobStatus
from tui.context import Context
from tui.screens.base import EXPLAIN_BINDINGS, FleetScreen
from tui.snapshot import Snapshot
from tui.widgets.banner import ConnectionBanner
from tui.widgets.job_detail import JobDetailView
from tui.widgets.poller import Poller


class JobDetailScreen(FleetScreen):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", tooltip="back to the main screen"),
        Binding("plus,equals_sign", "bump(1)", "Prio+", key_display="+"),
        Binding("minus", "bump(-1)", "Prio-", key_display="-"),
        Binding("P", "set_priority", "Set prio"),
        Binding("k", "kill", "Kill"),
        Binding("r", "retry", "Retry"),
        *EXPLAIN_BINDINGS,
    ]

    def __init__(
        self, ctx: Context, poller: Poller, job_id: str, known: JobStatus | None = None
    ) -> None:
        super().__init__(ctx, poller, id="detail")
        self.job_id = job_id
        self.status = known
        self.view = JobDetailView(id="detail-view")
        self.banner = ConnectionBanner(id="detail-banner")

    def compose(self) -> ComposeResult:
        yield self.banner
        yield self.view
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.view.border_title = f"Job {self.job_id}"
        last = self.poller.last
        if last is not None:
            self.show(last)

    def show(self, snapshot: Snapshot) -> None:
        detail = snapshot.detail
        if detail is not None and detail.job_id != self.job_id:
            detail = None
        if detail is not None:
            self.status = detail.status
            self.banner.clear_failure()
        self.view.show(self.job_id, detail, self.status, snapshot.now_ms)

    def selected_job(self) -> JobStatus | None:
        return self.status

    def action_back(self) -> None:
        self.dismiss(None)
