"""The main screen: queues, jobs and GPUs, all visible at once, fed by one poller."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from textual import events, on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.widgets import DataTable, Footer, Input

from fleetq import JobStatus
from tui.context import Context
from tui.screens.base import (
    ACTION_NAMES,
    EXPLAIN_BINDINGS,
    JOB_ACTIONS,
    JOB_COMMANDS,
    FleetScreen,
)
from tui.screens.confirm import ConfirmDrainMachine, ConfirmPause
from tui.screens.detail import JobDetailScreen
from tui.screens.gpu_detail import GpuDetailScreen
from tui.snapshot import GpuSnapshot, Snapshot
from tui.source import STATE_FILTERS, JobFilter, SnapshotSource
from tui.widgets.banner import ConnectionBanner
from tui.widgets.format import UNRUNNABLE
from tui.widgets.gpus import GpuTable
from tui.widgets.jobs import JobTable
from tui.widgets.poller import Poller
from tui.widgets.queues import QueueTable
from tui.widgets.summary import FleetSummary

#: A whole job id (what the find bar opens directly when it is not on the page).
JOB_ID = re.compile(r"[0-9a-f]{16}")

#: Below either size the main screen takes its compact layout (see app.tcss).
COMPACT_WIDTH = 100
COMPACT_HEIGHT = 32


class MainScreen(FleetScreen):
    BINDINGS = [
        Binding("1", "focus_pane('queues')", "Queues", show=False, tooltip="focus the Queues pane"),
        Binding("2", "focus_pane('jobs')", "Jobs", show=False, tooltip="focus the Jobs pane"),
        Binding("3", "focus_pane('gpus')", "GPUs", show=False, tooltip="focus the GPUs pane"),
        Binding("s", "cycle_state", "State", tooltip="cycle the jobs state filter"),
        Binding("v", "cycle_service", "Service", tooltip="cycle the jobs service filter"),
        Binding("i", "open_detail", "Detail", tooltip="job detail (also enter)"),
        Binding(
            "slash",
            "find",
            "Find",
            key_display="/",
            tooltip="find jobs by id prefix, tenant or metadata value (enter: keep, esc: clear)",
        ),
        Binding("escape", "clear_find", show=False),
        Binding("z", "zoom", "Zoom", show=False, tooltip="zoom the focused pane (again: restore)"),
        Binding("f5,ctrl+r", "refresh", "Refresh", show=False, tooltip="read the fleet again now"),
        # The action keys live on the pane they act on (tui.widgets); these only explain.
        *EXPLAIN_BINDINGS,
    ]
    COMMAND_ENTRIES = (
        *JOB_COMMANDS,
        ("Job detail", "Open the selected job's detail view", "open_detail"),
        ("Pause / resume service", "Toggle claims of the selected service queue", "toggle_pause"),
        ("Drain / undrain", "Toggle the selected GPU (or machine row)", "toggle_drain"),
        ("Drain / undrain machine", "Toggle the machine of the selected GPU", "drain_machine"),
        ("GPU detail", "Clocks, fan, PCIe, ECC of the selected GPU", "gpu_detail"),
        ("Clear GPU health", "Ask the supervisor to forget sticky findings", "clear_health"),
        ("Filter jobs by state", "Cycle active, queued, running, failed...", "cycle_state"),
        ("Filter jobs by service", "Cycle all services, then each one", "cycle_service"),
        ("Refresh now", "Read the fleet again now", "refresh"),
    )

    def __init__(
        self,
        ctx: Context,
        source: SnapshotSource,
        refresh_s: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        poller = Poller(source, refresh_s=refresh_s, clock=clock, id="poller")
        super().__init__(ctx, poller, id="main")
        self.banner = ConnectionBanner(id="banner")
        self.summary = FleetSummary(ctx.settings, readonly=ctx.readonly, id="summary")
        self.queues = QueueTable(id="queues")
        self.jobs = JobTable(id="jobs")
        self.gpus = GpuTable(id="gpus")
        self.find = Input(placeholder="find: job id prefix, tenant or metadata value", id="find")
        self.snapshot: Snapshot | None = None
        self._bindings_key: object = None
        self._jobs_titles: tuple[str, str] | None = None

    def compose(self) -> ComposeResult:
        yield self.summary
        yield self.banner
        yield self.queues
        yield self.jobs
        yield self.gpus
        yield self.find
        yield Footer(compact=True)
        yield self.poller

    def on_mount(self) -> None:
        self.queues.border_title = "Queues (1)"
        self.gpus.border_title = "GPUs by machine (3)"
        self._title_jobs(None)
        self.jobs.focus()

    def on_resize(self, event: events.Resize) -> None:
        width, height = event.size
        self.set_class(width < COMPACT_WIDTH or height < COMPACT_HEIGHT, "-compact")

    # -- data ----------------------------------------------------------------------------------

    def on_poller_updated(self, message: Poller.Updated) -> None:
        snapshot = message.snapshot
        self.snapshot = snapshot
        self.banner.clear_failure()
        self.summary.show(snapshot)
        self.queues.show(snapshot)
        self.jobs.show(snapshot)
        self.gpus.show(snapshot)
        self._title_jobs(snapshot)
        self._refresh_bindings_if_changed()
        screen = self.app.screen
        if isinstance(screen, (JobDetailScreen, GpuDetailScreen)):
            screen.show(snapshot)

    def on_poller_failed(self, message: Poller.Failed) -> None:
        for banner in self.app.screen.query(ConnectionBanner):
            banner.show_failure(message.error, message.retry_in_s, message.failures)
        if self.app.screen is not self:
            self.banner.show_failure(message.error, message.retry_in_s, message.failures)

    def _title_jobs(self, snapshot: Snapshot | None) -> None:
        f = self.poller.job_filter
        jobs = self.jobs
        title = f"Jobs (2) · {f.state} · {f.service or 'all services'}"
        if snapshot is not None and snapshot.job_filter == f:
            shown = len(snapshot.jobs)
            title += f" · {shown:,} shown of {snapshot.jobs_total:,}"
            unrunnable = sum(1 for j in snapshot.jobs if j.unschedulable is not None)
            if unrunnable:  # marked in the list; counted here in case they are scrolled away
                title += f" · {unrunnable:,} {UNRUNNABLE}"
        if jobs.find:
            title += f" · find {jobs.find!r}: {jobs.matched:,} match"
        if jobs.sort_by is not None:
            title += f" · {jobs.sort_label}"
        if jobs.marked:
            title += f" · {len(jobs.marked)} marked"
        # Setting a border title redraws the whole pane, even to the same text: set it only
        # when it changes (the refresh calls this every second).
        titles = (escape(title), "⏎ detail · s state · v service")
        if titles != self._jobs_titles:
            self._jobs_titles = titles
            self.jobs.border_title, self.jobs.border_subtitle = titles

    # -- selection -----------------------------------------------------------------------------

    def selected_job(self) -> JobStatus | None:
        return self.jobs.selected

    def selected_gpu(self) -> GpuSnapshot | None:
        key = self.gpus.cursor_key
        return None if key is None else self.gpus.gpus.get(key)

    def action_gpu_detail(self) -> None:
        gpu = self.selected_gpu()
        if gpu is None:
            self.notify("no GPU selected (a GPU row, not a machine)", severity="warning")
            return
        self.app.push_screen(GpuDetailScreen(self.ctx, self.poller, gpu.target))

    def marked_jobs(self) -> list[JobStatus]:
        return list(self.jobs.marked.values())

    def bulk_done(self) -> None:
        self.jobs.action_clear_marks()

    def why_not(self, action: str) -> str | None:
        focused = self.focused
        if action in JOB_ACTIONS:
            if focused is not None and focused is not self.jobs:
                return f"{ACTION_NAMES[action]} the job selected in the Jobs pane: press 2 first"
            return super().why_not(action)
        if action == "toggle_pause":
            if focused is not None and focused is not self.queues:
                return f"{ACTION_NAMES[action]} the service selected in Queues: press 1 first"
            return None if self.queues.selected is not None else "no service selected"
        if action == "clear_health":
            if focused is not None and focused is not self.gpus:
                return f"{ACTION_NAMES[action]} the GPU selected in the GPUs pane: press 3 first"
            return super().why_not(action)
        if action in ("toggle_drain", "drain_machine"):
            if focused is not None and focused is not self.gpus:
                return f"{ACTION_NAMES[action]} the GPU selected in the GPUs pane: press 3 first"
            return None if self.gpus.selected is not None else "no GPU or machine selected"
        return None

    def _refresh_bindings_if_changed(self) -> None:
        # The footer dims the job keys that make no sense for the selected job; recompute it
        # only when that changes (not once a second, nor when the cursor's job finished and
        # the cursor went to another in the same state): each refresh rebuilds the footer's
        # widgets and lays the screen out again.
        job = self.jobs.selected
        key = (
            id(self.focused),
            len(self.jobs.marked),
            None if job is None else (job.state, job.cancel_requested),
        )
        if key != self._bindings_key:
            self._bindings_key = key
            self.refresh_bindings()

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        self._refresh_bindings_if_changed()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table is self.jobs:
            self.action_open_detail()
        elif event.data_table is self.gpus:
            target = self.gpus.selected
            gpu = None if target is None or self.snapshot is None else _gpu_job(self, target.target)
            if gpu is not None:
                self._open(gpu)
        elif event.data_table is self.queues:
            service = self.queues.selected
            if service is not None:
                self._set_filter(replace(self.poller.job_filter, service=service.service))

    def action_open_detail(self) -> None:
        job = self._job_or_warn()
        if job is not None:
            self._open(job.id)

    def _open(self, job_id: str) -> None:
        known = self.jobs.jobs.get(job_id)
        self.poller.detail_id = job_id
        detail = JobDetailScreen(self.ctx, self.poller, job_id, known)
        self.app.push_screen(detail, callback=self._detail_closed)
        self.poller.refresh_now()

    def _detail_closed(self, _: None) -> None:
        self.poller.detail_id = None

    # -- find ---------------------------------------------------------------------------------

    def action_find(self) -> None:
        self.find.add_class("-open")
        self.find.focus()

    def on_job_table_view_changed(self) -> None:
        self._title_jobs(self.snapshot)
        self._refresh_bindings_if_changed()

    def action_clear_find(self) -> None:
        if not self.find.has_class("-open") and not self.jobs.find:
            raise SkipAction()  # escape means nothing here: let it through
        self.find.value = ""
        self.find.remove_class("-open")
        self.jobs.set_find("")
        self._title_jobs(self.snapshot)
        self.jobs.focus()

    @on(Input.Changed, "#find")
    def _find_changed(self, event: Input.Changed) -> None:
        self.jobs.set_find(event.value)
        self._title_jobs(self.snapshot)

    @on(Input.Submitted, "#find")
    def _find_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip().lower()
        self.jobs.focus()
        if self.jobs.row_count:
            self.jobs.move_cursor(row=0, animate=False)
        elif JOB_ID.fullmatch(text):
            self._open(text)  # not on this page: its detail reads it from Redis
        elif text:
            self.notify(f"no job on this page matches {text!r}", severity="warning")

    def action_focus_pane(self, pane: str) -> None:
        self.query_one(f"#{pane}").focus()

    def action_zoom(self) -> None:
        if self.maximized is not None:
            self.minimize()
        elif self.focused is not None:
            self.maximize(self.focused)

    def action_refresh(self) -> None:
        self.poller.refresh_now()

    # -- filters -------------------------------------------------------------------------------

    def action_cycle_state(self) -> None:
        states = STATE_FILTERS
        current = self.poller.job_filter.state
        state = states[(states.index(current) + 1) % len(states)]
        self._set_filter(replace(self.poller.job_filter, state=state))

    def action_cycle_service(self) -> None:
        choices: list[str | None] = [None, *self.ctx.settings.services]
        current = self.poller.job_filter.service
        index = choices.index(current) if current in choices else 0
        service = choices[(index + 1) % len(choices)]
        self._set_filter(replace(self.poller.job_filter, service=service))

    def _set_filter(self, job_filter: JobFilter) -> None:
        self.poller.job_filter = job_filter
        self._title_jobs(self.snapshot)
        self.poller.refresh_now()

    # -- queue and GPU actions -----------------------------------------------------------------

    # Each acts on what the Queues or GPUs pane has selected (the palette too), and asks
    # first before it stops claims for a whole service or machine.

    def action_toggle_pause(self) -> None:
        service = self.queues.selected
        if service is None:
            self.notify("no service selected", severity="warning")
            return
        name = service.service
        if service.paused:
            self._act(lambda op: op.set_paused(name, False))
        else:
            self.run_worker(
                self._confirm(
                    ConfirmPause(service),
                    lambda op: op.set_paused(name, True),
                    f"{name} left running",
                ),
                group="actions",
                exit_on_error=False,
            )

    def action_toggle_drain(self) -> None:
        target = self.gpus.selected
        if target is None:
            self.notify("no GPU or machine selected", severity="warning")
            return
        if target.target == target.machine:
            self._drain_machine(target.machine, target.machine_drained)
        else:
            self._act(lambda op: op.set_drained(target.target, not target.drained))

    def action_drain_machine(self) -> None:
        target = self.gpus.selected
        if target is None:
            self.notify("no GPU or machine selected", severity="warning")
            return
        self._drain_machine(target.machine, target.machine_drained)

    def _drain_machine(self, machine: str, drained: bool) -> None:
        if drained:
            self._act(lambda op: op.set_drained(machine, False))
            return
        host = (
            next((h for h in self.snapshot.hosts if h.host == machine), None)
            if self.snapshot
            else None
        )
        gpus = 0 if host is None else len(host.gpus)
        busy = 0 if host is None else sum(1 for g in host.gpus if g.job is not None)
        dialog = ConfirmDrainMachine(machine, gpus, busy)
        self.run_worker(
            self._confirm(
                dialog, lambda op: op.set_drained(machine, True), f"{machine} left as it was"
            ),
            group="actions",
            exit_on_error=False,
        )


def _gpu_job(screen: MainScreen, target: str) -> str | None:
    assert screen.snapshot is not None
    host, _, index = target.partition(":")
    for h in screen.snapshot.hosts:
        if h.host == host:
            for g in h.gpus:
                if str(g.index) == index and g.job is not None:
                    return g.job.id
    return None
