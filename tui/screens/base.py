"""The base of the dashboard's screens: the job actions, read-only mode, palette commands.

Every action goes through :class:`~tui.operator.Operator` (the core's client API), runs in a
worker so the UI never waits on Redis, reports its outcome with ``notify``, and asks the poller
for an immediate refresh. In read-only mode ``check_action`` hides and refuses them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.screen import Screen

from fleetq import FleetqError, JobStatus
from tui.context import Context
from tui.operator import Operator
from tui.screens.confirm import ConfirmKill
from tui.screens.priority import PriorityPrompt
from tui.widgets.poller import Poller

#: Every action that changes the fleet; none of them exists in read-only mode.
MUTATING_ACTIONS = frozenset(
    {"bump", "set_priority", "kill", "retry", "toggle_pause", "toggle_drain", "drain_machine"}
)

#: (title, help, action) of the job commands offered in the command palette.
JOB_COMMANDS = (
    ("Kill job", "Cancel the selected job (asks first)", "kill"),
    ("Retry job", "Requeue the selected failed or cancelled job", "retry"),
    ("Priority up", "Raise the selected queued job's priority by 1", "bump(1)"),
    ("Priority down", "Lower the selected queued job's priority by 1", "bump(-1)"),
    ("Set priority", "Type a new priority for the selected queued job", "set_priority"),
)


class FleetScreen(Screen[None]):
    """A screen that shows fleet data from the poller and offers the job actions."""

    #: (title, help, action) offered in the command palette from this screen.
    COMMAND_ENTRIES: tuple[tuple[str, str, str], ...] = JOB_COMMANDS

    def __init__(self, ctx: Context, poller: Poller, **kwargs: str | None) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.poller = poller

    def selected_job(self) -> JobStatus | None:
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.ctx.readonly and action in MUTATING_ACTIONS)

    def palette_commands(self) -> list[tuple[str, str, str]]:
        return [
            entry
            for entry in self.COMMAND_ENTRIES
            if self.check_action(entry[2].partition("(")[0], ())
        ]

    # -- job actions ----------------------------------------------------------------------------

    def action_bump(self, delta: int) -> None:
        job = self._job_or_warn()
        if job is not None:
            priority = job.priority + delta
            self._act(lambda op: op.set_priority(job, priority))

    def action_set_priority(self) -> None:
        job = self._job_or_warn()
        if job is not None:
            self.run_worker(self._ask_priority(job), group="actions", exit_on_error=False)

    def action_kill(self) -> None:
        job = self._job_or_warn()
        if job is not None:
            self.run_worker(self._confirm_kill(job), group="actions", exit_on_error=False)

    def action_retry(self) -> None:
        job = self._job_or_warn()
        if job is not None:
            self._act(lambda op: op.retry(job))

    async def _ask_priority(self, job: JobStatus) -> None:
        priority = await self.app.push_screen_wait(PriorityPrompt(job))
        if priority is not None:
            await self._run(lambda op: op.set_priority(job, priority))

    async def _confirm_kill(self, job: JobStatus) -> None:
        if await self.app.push_screen_wait(ConfirmKill(job)):
            await self._run(lambda op: op.kill(job))
        else:
            self.notify(f"job {job.id} left alone")

    # -- plumbing -------------------------------------------------------------------------------

    def _job_or_warn(self) -> JobStatus | None:
        job = self.selected_job()
        if job is None:
            self.notify("no job selected", severity="warning")
        return job

    def _act(self, call: Callable[[Operator], Awaitable[str]]) -> None:
        self.run_worker(self._run(call), group="actions", exit_on_error=False)

    async def _run(self, call: Callable[[Operator], Awaitable[str]]) -> None:
        operator = self.ctx.operator
        if self.ctx.readonly or operator is None:
            self.notify("read-only dashboard: actions are off", severity="warning")
            return
        try:
            message = await call(operator)
        except FleetqError as e:
            self.notify(str(e), title="Refused", severity="error")
        else:
            self.notify(message, title="Done")
        self.poller.refresh_now()
