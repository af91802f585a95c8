"""Set a job's priority to a typed value (higher runs first, -1000..1000)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.validation import Integer
from textual.widgets import Input, Static

from fleetq import JobStatus
from fleetq.validation import PRIORITY_MAX, PRIORITY_MIN


class PriorityPrompt(ModalScreen[int | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, job: JobStatus) -> None:
        super().__init__(classes="dialog")
        self.job = job

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"Priority of job {self.job.id} (now {self.job.priority})", id="question")
            yield Static(f"Higher runs first; {PRIORITY_MIN}..{PRIORITY_MAX}.", id="effect")
            yield Input(
                str(self.job.priority),
                id="priority",
                validators=[Integer(PRIORITY_MIN, PRIORITY_MAX)],
                select_on_focus=True,
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.validation_result is not None and not event.validation_result.is_valid:
            self.notify(
                f"enter a whole number from {PRIORITY_MIN} to {PRIORITY_MAX}", severity="error"
            )
            return
        self.dismiss(int(event.value))

    def action_cancel(self) -> None:
        self.dismiss(None)
