"""The job detail: summary, workflow, timeline of attempts, error, and output files."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from fleetq import JobState, JobStatus
from fleetq.humanize import duration
from tui.snapshot import JobDetail
from tui.source import JobAction
from tui.widgets.format import STATE_STYLES, WARNING, progress_cell, queue_position, state_cell
from tui.widgets.jobs import run_ms, wait_ms
from tui.workflow import WorkflowSummary


class JobDetailView(VerticalScroll):
    """Five sections, each a Static redrawn only when its content changed."""

    SECTIONS = ("overview", "workflow", "timeline", "error", "outputs")
    TITLES = {
        "overview": "Job",
        "workflow": "Workflow",
        "timeline": "Timeline",
        "error": "Error",
        "outputs": "Outputs",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[object, ...] | None = None
        self._sections = {
            name: Static(id=f"detail-{name}", classes="section") for name in self.SECTIONS
        }
        for name, section in self._sections.items():
            section.border_title = self.TITLES[name]
        self._texts: dict[str, Text] = {}

    def compose(self) -> ComposeResult:
        yield from self._sections.values()

    def show(
        self, job_id: str, detail: JobDetail | None, known: JobStatus | None, now_ms: int
    ) -> None:
        status = detail.status if detail is not None else known
        workflow = detail.workflow if detail is not None else None
        actions = detail.actions if detail is not None else ()
        # Ages move every second; everything else only when the job changes.
        key = (status, workflow, actions, now_ms // 1000)
        if key == self._shown:
            return
        self._shown = key
        if status is None:
            gone = Text(f"job {job_id} no longer exists (expired after its retention)", "yellow")
            self._set("overview", gone if detail is not None else Text("loading…", "dim"))
            for name in self.SECTIONS[1:]:
                self._set(name, Text(""))
            return
        self._set("overview", overview(status, now_ms))
        self._set("workflow", workflow_text(workflow))
        self._set("timeline", timeline(status, now_ms, actions))
        self._set("error", error_text(status, workflow))
        self._set("outputs", outputs_text(status))

    def _set(self, name: str, content: Text) -> None:
        if self._texts.get(name) != content:
            self._texts[name] = content
            self._sections[name].update(content)

    def section_text(self, name: str) -> str:
        """The plain text a section shows now."""
        text = self._texts.get(name)
        return "" if text is None else text.plain


def overview(job: JobStatus, now_ms: int) -> Text:
    state = state_cell(job)
    if job.state is JobState.RUNNING:
        state.append("  ")
        state.append_text(progress_cell(job.progress, job.progress_text, width=20))
    if job.state is JobState.QUEUED and job.position is not None:
        state.append(f"  {queue_position(job.position)} in its queue", style="dim")
    age = duration(now_ms - job.submitted_ms)
    ran = run_ms(job, now_ms)
    attempts = f"{job.attempts} of {job.max_attempts} charged, {job.claims} claims"
    if job.lost_leases:
        attempts += f", {job.lost_leases} lost leases"
    rows = [
        ("id", Text(job.id, style="bold")),
        ("service", Text(job.service)),
        ("state", state),
        ("priority", Text(str(job.priority))),
        ("attempts", Text(attempts)),
        ("host:gpu", Text("-" if job.host is None else f"{job.host}:{job.gpu}")),
        ("submitted", Text(f"{clock(job.submitted_ms)}, {age} ago")),
        ("waited", Text(duration(wait_ms(job, now_ms)))),
        ("ran", Text("-" if ran is None else duration(ran))),
        ("timeout", Text(duration(job.timeout_ms))),
    ]
    if job.state is JobState.QUEUED and job.ready_ms is None:
        rows.insert(4, ("eta", eta_text(job, now_ms)))
    if job.state is JobState.QUEUED and job.unschedulable is not None:
        rows.insert(3, ("runs on", unschedulable_text(job.unschedulable)))
    if job.finished_ms is not None:
        rows.insert(
            -3,
            ("ended", Text(f"{clock(job.finished_ms)}, {duration(now_ms - job.finished_ms)} ago")),
        )
    if job.cancel_requested and not job.is_terminal:
        rows.append(("cancel", Text("requested; waiting for the GPU to stop", "bold magenta")))
    if job.metadata:
        meta = json.dumps(dict(job.metadata), separators=(", ", ": "))
        rows.append(("metadata", Text(meta[:300])))
    return _grid(rows, width=11)


def eta_text(job: JobStatus, now_ms: int) -> Text:
    """A queued job's estimated start and finish, and what they rest on (fleetq.eta)."""
    e = job.eta
    if e is None:
        return Text("none: no live GPU can run it now", style="yellow")
    text = Text(f"starts in ~{duration(max(0, e.start_ms - now_ms))}", style="bold")
    text.append(f", done in ~{duration(max(0, e.finish_ms - now_ms))}")
    busy = f", {e.busy} busy" if e.busy else ""
    text.append(
        f"  ({e.ahead:.0f} ahead on {e.gpus} GPU{'s' if e.gpus != 1 else ''}{busy}, "
        f"{duration(e.run_ms)} a run{', a guess: none on record' if e.guess else ''})",
        style="dim",
    )
    return text


def unschedulable_text(reason: str) -> Text:
    """Why no live machine can run a queued job, and what happens to it."""
    said = reason if reason.startswith("no live machine") else f"no live machine: {reason}"
    text = Text(said, style=WARNING)
    text.append("  (it stays queued; a machine that can run it claims it at once)", style="dim")
    return text


def workflow_text(summary: WorkflowSummary | None) -> Text:
    if summary is None:
        return Text("loading…", style="dim")
    text = Text(summary.kind, style="bold")
    if summary.node_count is not None:
        text.append(f", {summary.node_count} nodes")
    if summary.detail:
        text.append(f", {summary.detail}")
    text.append("\nmodels: ", style="dim")
    text.append(", ".join(summary.models) if summary.models else "none named")
    return text


def timeline(job: JobStatus, now_ms: int, actions: Sequence[JobAction] = ()) -> Text:
    start = job.submitted_ms
    rows: list[tuple[str, Text]] = []
    pending = sorted(actions, key=lambda a: a.at_ms)

    def before(ms: int | None, inclusive: bool = True) -> None:
        # The cancels and retries that happened before ``ms`` (all that remain: None). Times
        # are in ms: an action in the same ms as a claim came after the claim before it.
        while pending and (
            ms is None or pending[0].at_ms < ms or (inclusive and pending[0].at_ms == ms)
        ):
            action = pending.pop(0)
            rows.append((at(action.at_ms), action_text(action)))

    def at(ms: int) -> str:
        return "+" + duration(max(0, ms - start)) if ms > start else "+0s"

    rows.append((at(start), Text(f"submitted at {clock(start)}, priority {job.priority}")))
    for attempt in job.timeline:
        before(attempt.started_ms, inclusive=False)
        where = attempt.host if attempt.gpu is None else f"{attempt.host}:{attempt.gpu}"
        rows.append((at(attempt.started_ms), Text(f"claim #{attempt.claim} by {where}")))
        if attempt.ended_ms is None:
            running = Text("  running", style="green")
            if job.state is JobState.RUNNING:
                running.append(f" for {duration(now_ms - attempt.started_ms)}")
            rows.append(("", running))
            continue
        outcome = Text(f"  ended: {attempt.outcome or 'unknown'}")
        outcome.stylize(_outcome_style(attempt.outcome))
        if attempt.detail:
            outcome.append(f" ({attempt.detail})", style="dim")
        outcome.append(f" after {duration(attempt.ended_ms - attempt.started_ms)}", style="dim")
        rows.append((at(attempt.ended_ms), outcome))
    before(job.finished_ms)
    if job.finished_ms is not None:
        style = STATE_STYLES.get(job.state, "")
        rows.append((at(job.finished_ms), Text(f"finished: {job.state.value}", style=style)))
    elif job.ready_ms is not None:
        rows.append((at(job.ready_ms), Text("retry becomes due", style="yellow")))
    before(None)
    return _grid(rows, width=max(len(label) for label, _ in rows), right=True)


ACTION_TEXT = {
    "cancelled": "cancelled",
    "cancel_requested": "cancel requested",
    "retried": "retried (requeued)",
    "bumped": "priority changed",
}


def action_text(action: JobAction) -> Text:
    text = Text(ACTION_TEXT.get(action.kind, action.kind), style="bold magenta")
    if action.change is not None:
        text.append(f" {action.change[0]} -> {action.change[1]}", style="magenta")
    if action.by:
        text.append(f" by {action.by}", style="magenta")
    return text


def _grid(rows: list[tuple[str, Text]], width: int, right: bool = False) -> Text:
    out = Text()
    for i, (label, value) in enumerate(rows):
        if i:
            out.append("\n")
        out.append((label.rjust(width) if right else label.ljust(width)) + "  ", style="dim")
        out.append_text(value)
    return out


def error_text(job: JobStatus, workflow: WorkflowSummary | None = None) -> Text:
    if job.error is None:
        return Text("none", style="dim")
    text = Text(job.error.type, style="bold red")
    text.append(f": {job.error.message}")
    if job.error.node:
        text.append("\nnode: ", style="dim")
        text.append(job.error.node)
        kind = workflow.node_class(job.error.node) if workflow is not None else None
        if kind:
            text.append(f" ({kind})", style="dim")
    if job.error.kind:
        text.append("\nfault: ", style="dim")
        text.append(job.error.kind.value)
    return text


def outputs_text(job: JobStatus) -> Text:
    if not job.outputs:
        return Text("none yet" if not job.is_terminal else "none", style="dim")
    text = Text()
    for i, f in enumerate(job.outputs):
        if i:
            text.append("\n")
        text.append(f.filename, style="bold")
        text.append(f"  {f.content_type}  {_size(f.size)}", style="dim")
    return text


def clock(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"


def _outcome_style(outcome: str | None) -> str:
    if outcome in ("completed",):
        return "green"
    if outcome in ("cancelled",):
        return "magenta"
    return "yellow" if outcome in ("requeued", "retrying", "lost") else "red"
