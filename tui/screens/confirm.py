"""The kill confirmation: it names the job, its service, state and where it runs."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from fleetq import JobState, JobStatus


class ConfirmKill(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Kill it"),
        Binding("n,escape", "answer(False)", "Keep it"),
    ]

    def __init__(self, job: JobStatus) -> None:
        super().__init__(classes="dialog")
        self.job = job

    def compose(self) -> ComposeResult:
        job = self.job
        running = job.state is JobState.RUNNING
        question = Text("Kill job ")
        question.append(job.id, style="bold")
        question.append("?")
        facts = Text(f"{job.service}, {job.state.value}, priority {job.priority}")
        if job.host:
            facts.append(f", on {job.host}:{job.gpu}")
        effect = (
            "Its GPU is told to interrupt it; it ends as cancelled."
            if running
            else "It is removed from the queue and ends as cancelled."
        )
        with Vertical(id="dialog"):
            yield Static(question, id="question")
            yield Static(facts, id="facts")
            yield Static(effect, id="effect")
            with Horizontal(id="buttons"):
                yield Button("Kill (y)", variant="error", id="yes")
                yield Button("Keep (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, kill: bool) -> None:
        self.dismiss(kill)
