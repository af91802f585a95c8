"""The jobs table: one bounded page, sorted by priority then age, with progress bars."""

from __future__ import annotations

from functools import partial

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
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
        Binding("space", "toggle_mark", "Mark", tooltip="mark / unmark the job for k + - r"),
        Binding("u", "clear_marks", "Unmark", show=False, tooltip="unmark every job"),
        Binding("o", "cycle_sort", "Sort", tooltip="sort by the next column (again: reverse)"),
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
        #: The jobs shown (after find), by id.
        self.jobs: dict[str, JobStatus] = {}
        #: Marked jobs (space), kept while they are on the page; bulk actions act on them.
        self.marked: dict[str, JobStatus] = {}
        #: Find text (``/``): an id prefix, or part of a metadata value (a tenant...).
        self.find = ""
        #: (column key, reversed) the operator sorted by; None: the default order.
        self.sort_by: tuple[str, bool] | None = None
        self.matched = 0
        self._snapshot: Snapshot | None = None

    def show(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        now = snapshot.now_ms
        jobs = [j for j in snapshot.jobs if matches(j, self.find)] if self.find else snapshot.jobs
        if self.sort_by is not None:
            key, reverse = self.sort_by
            jobs = sorted(jobs, key=partial(SORT_KEYS[key], now_ms=now), reverse=reverse)
        self.matched = len(jobs)
        self.jobs = {j.id: j for j in jobs}
        self.marked = {i: self.jobs.get(i, j) for i, j in self.marked.items() if i in self.jobs}
        # Ended jobs are listed newest first: their Age column counts from the end, to match.
        self._label_age("Ended" if snapshot.job_filter.state in ENDED_FILTERS else "Age")
        self.sync([(j.id, j) for j in jobs])

    def row_signature(self, item: JobStatus) -> tuple[object, ...]:
        return _signature(item, self._now_ms, item.id in self.marked)

    def row_cells(self, item: JobStatus) -> tuple[Text, ...]:
        return _cells(item, self._now_ms, item.id in self.marked)

    @property
    def _now_ms(self) -> int:
        """The time of the snapshot shown (ages are worked out against it)."""
        return 0 if self._snapshot is None else self._snapshot.now_ms

    class ViewChanged(Message):
        """The find, the sort or the marks changed (the pane title says them)."""

    def reshow(self) -> None:
        """Show the last snapshot again (after a find, sort or mark change)."""
        if self._snapshot is not None:
            self.show(self._snapshot)
        self.post_message(self.ViewChanged())

    def set_find(self, text: str) -> None:
        self.find = text.strip()
        self.reshow()

    def sort_on(self, key: str) -> None:
        """Sort by column ``key``; the same column again reverses it, a third time restores
        the default order. The cursor stays on its job."""
        if self.sort_by is None or self.sort_by[0] != key:
            self.sort_by = (key, key in DESCENDING)
        elif self.sort_by[1] == (key in DESCENDING):
            self.sort_by = (key, not self.sort_by[1])
        else:
            self.sort_by = None
        self.reshow()

    def action_cycle_sort(self) -> None:
        keys = list(SORT_KEYS)
        current = None if self.sort_by is None else self.sort_by[0]
        following = keys[(keys.index(current) + 1) % len(keys)] if current in keys else keys[0]
        self.sort_by = None
        self.sort_on(following)

    def on_data_table_header_selected(self, event: SyncedTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in SORT_KEYS:
            self.sort_on(key)

    def action_toggle_mark(self) -> None:
        job = self.selected
        if job is None:
            return
        if job.id in self.marked:
            del self.marked[job.id]
        else:
            self.marked[job.id] = job
        self.reshow()
        self.move_cursor(row=self.cursor_row + 1, animate=False)  # mark down the list

    def action_clear_marks(self) -> None:
        self.marked = {}
        self.reshow()

    @property
    def sort_label(self) -> str:
        if self.sort_by is None:
            return ""
        key, reverse = self.sort_by
        label = next(c[0] for c in self.COLUMNS if c[1] == key)
        return f"sorted by {label} {'↓' if reverse else '↑'}"

    def _label_age(self, label: str) -> None:
        column = self.columns.get(ColumnKey("age"))
        if column is not None and column.label.plain != label:
            column.label = Text(label)
            self.refresh()

    @property
    def selected(self) -> JobStatus | None:
        key = self.cursor_key
        return None if key is None else self.jobs.get(key)


def matches(job: JobStatus, find: str) -> bool:
    """``find`` is a prefix of the job id, part of its tenant, or part of a metadata value (a
    user...) or of ``key=value``; case does not matter."""
    needle = find.lower()
    if job.id.startswith(needle) or needle in job.tenant.lower():
        return True
    for key, value in job.metadata.items():
        text = str(value).lower()
        if needle in text or needle == f"{key}={text}".lower():
            return True
    return False


def _position_key(job: JobStatus, now_ms: int) -> tuple[float, float]:
    # Running jobs by progress, queued ones by position, after them.
    if job.state is JobState.RUNNING:
        return (0, -job.progress)
    return (1, job.position if job.position is not None else 1e12)


#: What each sortable column sorts by (``now_ms`` for the times).
SORT_KEYS = {
    "priority": lambda j, now_ms: j.priority,
    "age": lambda j, now_ms: age_ms(j, now_ms),
    "wait": lambda j, now_ms: wait_ms(j, now_ms),
    "run": lambda j, now_ms: run_ms(j, now_ms) or 0,
    "service": lambda j, now_ms: j.service,
    "state": lambda j, now_ms: j.state.value,
    "where": lambda j, now_ms: (j.host or "", j.gpu if j.gpu is not None else -1),
    "attempts": lambda j, now_ms: j.attempts,
    "progress": _position_key,
    "id": lambda j, now_ms: j.id,
}
#: Columns whose first sort is largest first.
DESCENDING = frozenset({"priority", "age", "wait", "run", "attempts"})

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


def _signature(job: JobStatus, now_ms: int, marked: bool = False) -> tuple[object, ...]:
    # Everything the row shows; times only as precise as they are printed.
    run = run_ms(job, now_ms)
    return (
        job.state, job.cancel_requested, job.ready_ms is None, job.priority,
        age(age_ms(job, now_ms)), age(wait_ms(job, now_ms)), None if run is None else age(run),
        job.host, job.gpu, job.attempts, job.max_attempts,
        round(job.progress, 3), job.progress_text, job.position, job.error, job.unschedulable,
        marked,
    )  # fmt: skip


def _cells(job: JobStatus, now_ms: int, marked: bool = False) -> tuple[Text, ...]:
    if job.state is JobState.RUNNING:
        progress = progress_cell(job.progress, job.progress_text)
    elif job.state is JobState.QUEUED and job.position is not None:
        progress = Text(queue_position(job.position), style="dim")
        if job.unschedulable is not None:
            progress.append(f"  {job.unschedulable}", style="yellow")  # why: no GPU can run it
    elif job.error is not None:
        progress = Text(job.error.describe(), style="red")
    else:
        progress = DASH
    run = run_ms(job, now_ms)
    prio_style = "bold" if job.priority > 0 else "dim" if job.priority < 0 else ""
    cells = (
        Text(job.id, style="bold black on yellow" if marked else ""),
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
