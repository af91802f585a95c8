"""The base of the dashboard's screens: the job actions, read-only mode, palette commands.

Every action goes through :class:`~tui.operator.Operator` (the core's client API), runs in a
worker so the UI never waits on Redis, reports its outcome with ``notify``, and asks the poller
for an immediate refresh. In read-only mode ``check_action`` hides and refuses them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.binding import Binding
from textual.screen import Screen

from fleetq import FleetqError, JobState, JobStatus, RedisUnavailable
from tui.context import Context
from tui.operator import Operator
from tui.screens.confirm import Confirm, ConfirmBulk, ConfirmKill
from tui.screens.priority import PriorityPrompt
from tui.snapshot import GpuSnapshot
from tui.widgets.poller import Poller

#: Every action that changes the fleet; none of them exists in read-only mode.
MUTATING_ACTIONS = frozenset(
    {
        "bump",
        "set_priority",
        "kill",
        "retry",
        "toggle_pause",
        "toggle_drain",
        "drain_machine",
        "clear_health",
    }
)

#: What each action key does, for the messages that say why a key did nothing.
ACTION_NAMES = {
    "bump": "+/- changes the priority of",
    "set_priority": "P sets the priority of",
    "kill": "k kills",
    "retry": "r retries",
    "toggle_pause": "p pauses or resumes",
    "toggle_drain": "d drains or undrains",
    "drain_machine": "D drains or undrains the machine of",
    "clear_health": "c clears the sticky health findings of",
}

#: Fallbacks for the action keys, after the real bindings: when the real one is off (read-only,
#: another pane focused, nothing to act on), the key still answers, saying why it did nothing.
EXPLAIN_BINDINGS = [
    Binding("plus,equals_sign,minus", "explain('bump')", show=False),
    Binding("P", "explain('set_priority')", show=False),
    Binding("k", "explain('kill')", show=False),
    Binding("r", "explain('retry')", show=False),
    Binding("p", "explain('toggle_pause')", show=False),
    Binding("d", "explain('toggle_drain')", show=False),
    Binding("D", "explain('drain_machine')", show=False),
    Binding("c", "explain('clear_health')", show=False),
]

#: (title, help, action) of the job commands offered in the command palette.
JOB_COMMANDS = (
    ("Kill job", "Cancel the selected job (asks first)", "kill"),
    ("Retry job", "Requeue the selected failed or cancelled job", "retry"),
    ("Priority up", "Raise the selected queued job's priority by 1", "bump(1)"),
    ("Priority down", "Lower the selected queued job's priority by 1", "bump(-1)"),
    ("Set priority", "Type a new priority for the selected queued job", "set_priority"),
)


#: The actions that act on one job.
JOB_ACTIONS = frozenset({"bump", "set_priority", "kill", "retry"})


def job_refusal(job: JobStatus, action: str) -> str | None:
    """Why ``action`` makes no sense for ``job`` in its state (None: it does)."""
    if action in ("bump", "set_priority") and job.state is not JobState.QUEUED:
        return f"job {job.id} is {job.state.value}: only a queued job's priority can change"
    if action == "kill" and job.is_terminal:
        return f"job {job.id} already ended ({job.state.value}): nothing to kill"
    if action == "retry" and job.state not in (JobState.FAILED, JobState.CANCELLED):
        return f"job {job.id} is {job.state.value}: only failed or cancelled jobs can be retried"
    return None


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

    def selected_gpu(self) -> GpuSnapshot | None:
        """The GPU (not a machine row) the health actions act on."""
        return None

    def action_clear_health(self) -> None:
        gpu = self.selected_gpu()
        if gpu is None:
            self.notify("no GPU selected (a GPU row, not a machine)", severity="warning")
            return
        self._act(lambda op: op.clear_health(gpu.host, gpu.index))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MUTATING_ACTIONS:
            if self.ctx.readonly:
                return False
            # None: shown dimmed in the footer, and the key falls through to ``explain``.
            return None if self.why_not(action) else True
        return True

    def why_not(self, action: str) -> str | None:
        """Why ``action`` cannot act now (None: it can)."""
        if action == "clear_health":
            return None if self.selected_gpu() is not None else "no GPU selected"
        if action in JOB_ACTIONS:
            marked = self.marked_jobs()
            if marked and action != "set_priority":
                fits = any(job_refusal(j, action) is None for j in marked)
                return None if fits else f"none of the {len(marked)} marked jobs can take this"
            job = self.selected_job()
            return "no job selected" if job is None else job_refusal(job, action)
        return None

    def action_explain(self, action: str) -> None:
        """A key whose action is off says why, instead of doing nothing."""
        if self.ctx.readonly:
            key = ACTION_NAMES.get(action, action).split()[0]
            self.notify(
                f"read-only dashboard: {key} does nothing here",
                title="Read-only",
                severity="warning",
            )
            return
        self.notify(self.why_not(action) or "not available here", severity="warning")

    def palette_commands(self) -> list[tuple[str, str, str]]:
        return [
            entry
            for entry in self.COMMAND_ENTRIES
            if self.check_action(entry[2].partition("(")[0], ()) is not False
        ]

    async def run_command(self, action: str) -> None:
        """Run a palette command; one that cannot act now says why (never nothing)."""
        if not await self.app.run_action(action, self):
            self.action_explain(action.partition("(")[0])

    # -- job actions ----------------------------------------------------------------------------

    def marked_jobs(self) -> list[JobStatus]:
        """The jobs marked for a bulk action (none outside the main screen)."""
        return []

    def _bulk(self, action: str, parameter: int = 0) -> bool:
        """Act on the marked jobs, if any, after one confirmation naming the count."""
        marked = self.marked_jobs()
        if not marked:
            return False
        jobs = [j for j in marked if job_refusal(j, action) is None]
        if not jobs:
            self.notify(f"none of the {len(marked)} marked jobs can take this", severity="warning")
            return True
        name = action if action != "bump" else ("bump+" if parameter > 0 else "bump-")
        dialog = ConfirmBulk(name, jobs, len(marked) - len(jobs))
        self.run_worker(
            self._confirm_bulk(dialog, action, parameter), group="actions", exit_on_error=False
        )
        return True

    async def _confirm_bulk(self, dialog: ConfirmBulk, action: str, parameter: int) -> None:
        if not await self.app.push_screen_wait(dialog):
            self.notify(f"{len(dialog.jobs)} marked jobs left alone")
            return
        operator = self.ctx.operator
        if self.ctx.readonly or operator is None:
            self.notify("read-only dashboard: actions are off", severity="warning")
            return
        done, refused = 0, []
        for job in dialog.jobs:
            try:
                if action == "kill":
                    await operator.kill(job)
                elif action == "retry":
                    await operator.retry(job)
                else:
                    await operator.bump(job, parameter)
                done += 1
            except (FleetqError, OSError) as e:
                refused.append(str(e))
        self.bulk_done()
        verb = {"kill": "killed", "retry": "retried", "bump": "re-prioritized"}[action]
        if refused:
            self.notify(
                f"{done} of {len(dialog.jobs)} jobs {verb}; {len(refused)} refused: {refused[0]}",
                title="Partly done",
                severity="warning",
            )
        else:
            self.notify(f"{done} jobs {verb}", title="Done")
        self.poller.refresh_now()

    def bulk_done(self) -> None:
        """Called after a bulk action ran (the main screen unmarks the jobs)."""

    def action_bump(self, delta: int) -> None:
        if self._bulk("bump", delta):
            return
        job = self._job_or_warn()
        if job is not None:
            # Relative in Redis, never "the priority on screen + 1": quick presses all count.
            self._act(lambda op: op.bump(job, delta))

    def action_set_priority(self) -> None:
        job = self._job_or_warn()
        if job is not None:
            self.run_worker(self._ask_priority(job), group="actions", exit_on_error=False)

    def action_kill(self) -> None:
        if self._bulk("kill"):
            return
        job = self._job_or_warn()
        if job is not None:
            self.run_worker(self._confirm_kill(job), group="actions", exit_on_error=False)

    def action_retry(self) -> None:
        if self._bulk("retry"):
            return
        job = self._job_or_warn()
        if job is not None:
            self._act(lambda op: op.retry(job))

    async def _ask_priority(self, job: JobStatus) -> None:
        priority = await self.app.push_screen_wait(PriorityPrompt(job))
        if priority is not None:
            await self._run(lambda op: op.set_priority(job, priority))

    async def _confirm_kill(self, job: JobStatus) -> None:
        await self._confirm(ConfirmKill(job), lambda op: op.kill(job), f"job {job.id} left alone")

    async def _confirm(
        self, dialog: Confirm, call: Callable[[Operator], Awaitable[str]], declined: str
    ) -> None:
        """Run ``call`` once the operator said yes to ``dialog``; otherwise say nothing changed."""
        if await self.app.push_screen_wait(dialog):
            await self._run(call)
        else:
            self.notify(declined)

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
        except RedisUnavailable as e:
            self.notify(
                f"not done, Redis is unreachable: {e}", title="Redis down", severity="error"
            )
        except (FleetqError, OSError) as e:
            self.notify(str(e), title="Not done", severity="error")
        else:
            self.notify(message, title="Done")
        self.poller.refresh_now()
