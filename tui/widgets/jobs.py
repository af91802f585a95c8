"""The jobs table: one bounded page, sorted by priority then age, with progress bars."""

from __future__ import annotations

from functools import partial

from rich.text import Text
from textual.binding import Binding

from fleetq.model import JobState, JobStatus
from tui.snapshot import Snapshot
from tui.widgets.format import DASH, age, progress_cell, queue_position, state_cell, where
from tui.widgets.synced_table import SyncedTable


class JobTable(SyncedTable):
    # Job keys exist only while this pane has the focus; each acts on the job under the cursor.
    BINDINGS = [
        Binding("plus,equals_sign", "screen.bump(1)", "Prio+", key_display="+"),
        Binding("minus", "screen.bump(-1)", "Prio-", key_display="-"),
        Binding("P", "screen.set_priority", "Set prio"),
        Binding("k", "screen.kill", "Kill"),
        Binding("r", "screen.retry", "Retry"),
    ]
    COLUMNS = (
        ("Job", "id", 16),
        ("Service", "service", 8),
        ("State", "state", 10),
        ("Prio", "priority", 5),
        ("Age", "age", 7),
        ("Host:GPU", "where", 16),
        ("Tries", "attempts", 5),
        ("Progress", "progress", 36),
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.jobs: dict[str, JobStatus] = {}

    def show(self, snapshot: Snapshot) -> None:
        self.jobs = {j.id: j for j in snapshot.jobs}
        now = snapshot.now_ms
        self.sync([(j.id, _signature(j, now), partial(_cells, j, now)) for j in snapshot.jobs])

    @property
    def selected(self) -> JobStatus | None:
        key = self.cursor_key
        return None if key is None else self.jobs.get(key)


def _signature(job: JobStatus, now_ms: int) -> tuple[object, ...]:
    # Everything the row shows; the age only as precise as it is printed.
    return (
        job.state, job.cancel_requested, job.ready_ms is None, job.priority,
        age(now_ms - job.submitted_ms), job.host, job.gpu, job.attempts, job.max_attempts,
        round(job.progress, 3), job.progress_text, job.position, job.error,
    )  # fmt: skip


def _cells(job: JobStatus, now_ms: int) -> tuple[Text, ...]:
    if job.state is JobState.RUNNING:
        progress = progress_cell(job.progress, job.progress_text[:18])
    elif job.state is JobState.QUEUED and job.position is not None:
        progress = Text(queue_position(job.position), style="dim")
    elif job.error is not None:
        progress = Text(job.error.describe(), style="red")
    else:
        progress = DASH
    prio_style = "bold" if job.priority > 0 else "dim" if job.priority < 0 else ""
    cells = (
        Text(job.id),
        Text(job.service),
        state_cell(job),
        Text(str(job.priority), style=prio_style, justify="right"),
        Text(age(now_ms - job.submitted_ms), justify="right"),
        where(job.host, job.gpu),
        Text(f"{job.attempts}/{job.max_attempts}", justify="right"),
        progress,
    )
    return cells
