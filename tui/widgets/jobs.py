"""The jobs table: one bounded page, sorted by priority then age, with progress bars."""

from __future__ import annotations

from functools import partial

from rich.text import Text
from textual.binding import Binding
from textual.widgets.data_table import ColumnKey

from fleetq.model import JobState, JobStatus
from tui.snapshot import Snapshot
from tui.widgets.format import DASH, age, progress_cell, queue_position, state_cell, where
from tui.widgets.synced_table import SyncedTable


class JobTable(SyncedTable):
    # Job keys exist only while this pane has the focus; each acts on the job under the cursor.
    BINDINGS = [
        Binding(
            "plus,equals_sign",
            "screen.bump(1)",
            "Prio+",
            key_display="+",
            tooltip="priority +1 (atomic in Redis)",
        ),
        Binding("minus", "screen.bump(-1)", "Prio-", key_display="-", tooltip="priority -1"),
        Binding("P", "screen.set_priority", "Set prio", tooltip="type a priority, -1000..1000"),
        Binding("k", "screen.kill", "Kill", tooltip="cancel the job (asks first)"),
        Binding("r", "screen.retry", "Retry", tooltip="requeue a failed or cancelled job"),
    ]
    COLUMNS = (
        ("Job", "id", 16),
        ("Service", "service", 8),
        ("State", "state", 10),
        ("Prio", "priority", 5),
        ("Age", "age", 7),
        ("Wait", "wait", 6),
        ("Run", "run", 6),
        ("Host:GPU", "where", 16),
        ("Tries", "attempts", 5),
        ("Progress", "progress", 36),
    )
    FLEX = {"progress": 1}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.jobs: dict[str, JobStatus] = {}

    def show(self, snapshot: Snapshot) -> None:
        self.jobs = {j.id: j for j in snapshot.jobs}
        now = snapshot.now_ms
        # Ended jobs are listed newest first: their Age column counts from the end, to match.
        self._label_age("Ended" if snapshot.job_filter.state in ENDED_FILTERS else "Age")
        self.sync([(j.id, _signature(j, now), partial(_cells, j, now)) for j in snapshot.jobs])

    def _label_age(self, label: str) -> None:
        column = self.columns.get(ColumnKey("age"))
        if column is not None and column.label.plain != label:
            column.label = Text(label)
            self.refresh()

    @property
    def selected(self) -> JobStatus | None:
        key = self.cursor_key
        return None if key is None else self.jobs.get(key)


#: The job filters that list ended jobs (newest first).
ENDED_FILTERS = frozenset({"completed", "failed", "cancelled"})


def age_ms(job: JobStatus, now_ms: int) -> int:
    """Since the job ended (ended jobs), else since it was submitted."""
    if job.finished_ms is not None:
        return now_ms - job.finished_ms
    return now_ms - job.submitted_ms


def wait_ms(job: JobStatus, now_ms: int) -> int:
    """Time in the queue: submit to its (latest) start, or to now while it waits."""
    if job.started_ms is not None:
        return job.started_ms - job.submitted_ms
    return (job.finished_ms or now_ms) - job.submitted_ms


def run_ms(job: JobStatus, now_ms: int) -> int | None:
    """Time on its GPU: the latest start to the end, or to now while it runs."""
    if job.started_ms is None:
        return None
    return (job.finished_ms or now_ms) - job.started_ms


def tries(job: JobStatus) -> str:
    """Tries so far: the attempts charged (failures), plus the one running or that completed
    (``1/3`` for a job on, or done after, its first run)."""
    current = job.attempts + (job.state in (JobState.RUNNING, JobState.COMPLETED))
    return f"{current}/{job.max_attempts}"


def _signature(job: JobStatus, now_ms: int) -> tuple[object, ...]:
    # Everything the row shows; times only as precise as they are printed.
    run = run_ms(job, now_ms)
    return (
        job.state, job.cancel_requested, job.ready_ms is None, job.priority,
        age(age_ms(job, now_ms)), age(wait_ms(job, now_ms)), None if run is None else age(run),
        job.host, job.gpu, job.attempts, job.max_attempts,
        round(job.progress, 3), job.progress_text, job.position, job.error,
    )  # fmt: skip


def _cells(job: JobStatus, now_ms: int) -> tuple[Text, ...]:
    if job.state is JobState.RUNNING:
        progress = progress_cell(job.progress, job.progress_text)
    elif job.state is JobState.QUEUED and job.position is not None:
        progress = Text(queue_position(job.position), style="dim")
    elif job.error is not None:
        progress = Text(job.error.describe(), style="red")
    else:
        progress = DASH
    run = run_ms(job, now_ms)
    prio_style = "bold" if job.priority > 0 else "dim" if job.priority < 0 else ""
    cells = (
        Text(job.id),
        Text(job.service),
        state_cell(job),
        Text(str(job.priority), style=prio_style, justify="right"),
        Text(age(age_ms(job, now_ms)), justify="right"),
        Text(age(wait_ms(job, now_ms)), justify="right"),
        DASH if run is None else Text(age(run), justify="right"),
        where(job.host, job.gpu),
        Text(tries(job), justify="right"),
        progress,
    )
    return cells
