"""Confirmations: each names exactly what it acts on and what will happen, and waits for y/n.

:class:`Confirm` is the dialog; :class:`ConfirmKill`, :func:`confirm_pause` and
:func:`confirm_drain_machine` fill it in for the actions that stop work.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from fleetq import JobState, JobStatus
from fleetq.model import ServiceStats


class Confirm(ModalScreen[bool]):
    """Ask one yes/no question: ``question`` (bold), the facts, the effect; "no" is focused."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: Text, facts: Text, effect: str, yes: str, no: str) -> None:
        super().__init__(classes="dialog")
        self.question = question
        self.facts = facts
        self.effect = effect
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question")
            yield Static(self.facts, id="facts")
            yield Static(self.effect, id="effect")
            with Horizontal(id="buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button(f"{self.no} (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ConfirmKill(Confirm):
    """The kill confirmation: it names the job, its service, state and where it runs."""

    def __init__(self, job: JobStatus) -> None:
        self.job = job
        question = Text("Kill job ")
        question.append(job.id, style="bold")
        question.append("?")
        facts = Text(f"{job.service}, {job.state.value}, priority {job.priority}")
        if job.host:
            facts.append(f", on {job.host}:{job.gpu}")
        effect = (
            "Its GPU is told to interrupt it; it ends as cancelled."
            if job.state is JobState.RUNNING
            else "It is removed from the queue and ends as cancelled."
        )
        super().__init__(question, facts, effect, "Kill", "Keep")


class ConfirmPause(Confirm):
    """Pausing a service stops every GPU from claiming its jobs."""

    def __init__(self, service: ServiceStats) -> None:
        self.service = service
        question = Text("Pause service ")
        question.append(service.service, style="bold")
        question.append("?")
        facts = Text(f"{service.queued:,} queued, {service.running:,} running")
        effect = (
            "No GPU claims its jobs until it is resumed; running jobs finish. "
            "Submitting still works."
        )
        super().__init__(question, facts, effect, "Pause", "Cancel")


class ConfirmDrainMachine(Confirm):
    """Draining a machine stops all of its GPUs from claiming."""

    def __init__(self, machine: str, gpus: int, busy: int) -> None:
        self.machine = machine
        question = Text("Drain machine ")
        question.append(machine, style="bold")
        question.append("?")
        facts = Text(f"{gpus} GPUs, {busy} running a job")
        effect = "None of its GPUs claims a new job until it is undrained; running jobs finish."
        super().__init__(question, facts, effect, "Drain", "Cancel")


#: Bulk actions: (verb for the question, what happens).
BULK_EFFECTS = {
    "kill": ("Kill", "Queued jobs end cancelled; running ones are interrupted by their GPU."),
    "bump+": ("Raise the priority of", "Each moves up by 1, atomically in Redis."),
    "bump-": ("Lower the priority of", "Each moves down by 1, atomically in Redis."),
    "retry": ("Retry", "Each goes back to its queue, keeping its submit order."),
}


class ConfirmBulk(Confirm):
    """One question for a bulk action on the marked jobs, naming how many."""

    def __init__(self, action: str, jobs: list[JobStatus], skipped: int) -> None:
        self.action = action
        self.jobs = jobs
        verb, effect = BULK_EFFECTS[action]
        count = len(jobs)
        question = Text(f"{verb} {count} marked job{'s' if count != 1 else ''}?")
        states: dict[str, int] = {}
        for job in jobs:
            states[job.state.value] = states.get(job.state.value, 0) + 1
        facts = Text(", ".join(f"{n} {state}" for state, n in sorted(states.items())))
        if skipped:
            facts.append(f"; {skipped} other marked job{'s' if skipped != 1 else ''} "
                         "left alone (not in a state for it)")  # fmt: skip
        super().__init__(question, facts, effect, f"{verb.split()[0]} {count}", "Cancel")
