"""Every dashboard action changes Redis as the core says it should, with visible feedback;
read-only mode refuses them all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.message import Message
from textual.notifications import Notify

from fleetq import AsyncClient, JobError, JobState
from fleetq.model import FaultKind
from fleetq.worker import WorkerQueue
from tests.tui.dash_helpers import (
    actions_done,
    comfy_graph,
    first_snapshot,
    fresh,
    gpu_record,
    wait_until,
)
from tui.app import FleetqApp
from tui.screens.confirm import ConfirmKill
from tui.screens.priority import PriorityPrompt

MakeApp = Callable[..., FleetqApp]


class Notes:
    """Collects the notifications the app shows (toasts are off in tests)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def __call__(self, message: Message) -> None:
        if isinstance(message, Notify):
            self.messages.append((message.notification.severity, message.notification.message))

    def last(self) -> str:
        assert self.messages, "no notification"
        return self.messages[-1][1]


def select_job(app: FleetqApp, job_id: str) -> None:
    table = app.main_screen.jobs
    table.focus()
    table.move_cursor(row=table.get_row_index(job_id), animate=False)


async def test_bump_up_down_and_set_priority_reorder_the_queue(
    make_app: MakeApp, aclient: AsyncClient
) -> None:
    ids = [(await aclient.submit(comfy_graph(i))).id for i in range(3)]
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        table = app.main_screen.jobs
        assert [str(r.key.value) for r in table.ordered_rows] == ids

        select_job(app, ids[2])
        await pilot.press("plus")
        await actions_done(app)
        assert (await aclient.status(ids[2])).priority == 1
        assert (await aclient.jobs("queued"))[0].id == ids[2]
        assert f"job {ids[2]}: priority 0 -> 1" in notes.last()
        await fresh(pilot)
        # Re-sorted in place: the bumped job is first and the cursor followed it.
        assert str(table.ordered_rows[0].key.value) == ids[2]
        assert table.cursor_key == ids[2]
        assert table.cursor_row == 0

        await pilot.press("minus")
        await actions_done(app)
        assert (await aclient.status(ids[2])).priority == 0
        await fresh(pilot)
        assert table.cursor_key == ids[2]

        select_job(app, ids[1])
        await pilot.press("P")
        await wait_until(pilot, lambda: isinstance(app.screen, PriorityPrompt), "the prompt")
        await pilot.press(*"42", "enter")
        await actions_done(app)
        assert (await aclient.status(ids[1])).priority == 42
        assert (await aclient.jobs("queued"))[0].id == ids[1]
        await fresh(pilot)
        assert table.cursor_key == ids[1]
        assert table.cursor_row == 0


async def test_priority_prompt_rejects_out_of_range(
    make_app: MakeApp, aclient: AsyncClient
) -> None:
    job = await aclient.submit(comfy_graph())
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        select_job(app, job.id)
        await pilot.press("P")
        await wait_until(pilot, lambda: isinstance(app.screen, PriorityPrompt), "the prompt")
        await pilot.press(*"5000", "enter")
        assert isinstance(app.screen, PriorityPrompt)  # still open, value refused
        await pilot.press("escape")
        await actions_done(app)
        assert (await aclient.status(job.id)).priority == 0


async def test_kill_names_the_job_and_cancels_a_queued_one(
    make_app: MakeApp, aclient: AsyncClient
) -> None:
    keep, victim = [await aclient.submit(comfy_graph(i)) for i in range(2)]
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        select_job(app, victim.id)
        await pilot.press("k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmKill), "the confirmation")
        modal = app.screen
        assert isinstance(modal, ConfirmKill)
        assert modal.job.id == victim.id
        question = str(modal.query_one("#question").render())
        assert victim.id in question

        await pilot.press("y")
        await actions_done(app)
        assert (await aclient.status(victim.id)).state is JobState.CANCELLED
        assert (await aclient.status(keep.id)).state is JobState.QUEUED
        assert notes.last() == f"job {victim.id} cancelled"
        await fresh(pilot)
        assert victim.id not in app.main_screen.jobs.rows  # the queued job vanished


async def test_kill_can_be_declined(make_app: MakeApp, aclient: AsyncClient) -> None:
    job = await aclient.submit(comfy_graph())
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        select_job(app, job.id)
        await pilot.press("k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmKill), "the confirmation")
        await pilot.press("n")
        await actions_done(app)
        assert (await aclient.status(job.id)).state is JobState.QUEUED


async def test_kill_requests_cancel_of_a_running_job(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue
) -> None:
    job = await aclient.submit(comfy_graph())
    claimed = await worker.try_claim(["comfyui"], "gpu-host-1", 3)
    assert claimed.job is not None and claimed.job.id == job.id
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        select_job(app, job.id)
        await pilot.press("k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmKill), "the confirmation")
        await pilot.click("#yes")
        await actions_done(app)
        status = await aclient.status(job.id)
        assert status.state is JobState.RUNNING
        assert status.cancel_requested
        assert "cancel requested on gpu-host-1:3" in notes.last()
        await fresh(pilot)
        state_cell = app.main_screen.jobs.get_cell(job.id, "state")
        assert state_cell.plain == "cancelling"


async def test_retry_requeues_a_failed_job(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue
) -> None:
    job = await aclient.submit(comfy_graph())
    claimed = await worker.try_claim(["comfyui"], "gpu-host-1", 0)
    assert claimed.job is not None
    await worker.fail(claimed.job, FaultKind.FINAL, JobError("ValueError", "bad ckpt", node="1"))
    assert (await aclient.status(job.id)).state is JobState.FAILED
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        await pilot.press("s", "s", "s")  # active -> queued -> running -> failed
        await wait_until(pilot, lambda: job.id in app.main_screen.jobs.rows, "the failed job")
        assert app.main_screen.poller.job_filter.state == "failed"
        select_job(app, job.id)
        await pilot.press("r")
        await actions_done(app)
        assert (await aclient.status(job.id)).state is JobState.QUEUED
        assert notes.last().startswith(f"job {job.id} requeued")

        await fresh(pilot)
        assert job.id not in app.main_screen.jobs.rows  # no longer failed

        # r on a queued job says why it does nothing, without asking the core.
        await pilot.press("s", "s", "s")  # failed -> completed -> cancelled -> active
        await wait_until(pilot, lambda: job.id in app.main_screen.jobs.rows, "the queued job")
        select_job(app, job.id)
        await pilot.press("r")
        await actions_done(app)
        assert notes.messages[-1] == (
            "warning",
            f"job {job.id} is queued: only failed or cancelled jobs can be retried",
        )
        # Had the dashboard's copy been stale, the core refuses, and the refusal is shown.
        app.main_screen.action_retry()
        await actions_done(app)
        assert notes.messages[-1] == ("error", f"cannot retry job {job.id}: it is queued")


async def test_drain_gpu_and_machine_block_claims(
    make_app: MakeApp,
    aclient: AsyncClient,
    worker: WorkerQueue,
    publish: Callable[..., Awaitable[None]],
) -> None:
    await publish("gpu-host-1", [gpu_record(0), gpu_record(1)])
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        gpus = app.main_screen.gpus
        await pilot.press("3")
        assert gpus.has_focus
        gpus.move_cursor(row=gpus.get_row_index("gpu-host-1:0"))
        await pilot.press("d")
        await actions_done(app)
        assert "gpu-host-1:0 drained" in notes.last()
        assert (await worker.try_claim(["comfyui"], "gpu-host-1", 0)).drained
        assert not (await worker.try_claim(["comfyui"], "gpu-host-1", 1)).drained
        await fresh(pilot)
        assert gpus.get_cell("gpu-host-1:0", "state").plain == "DRAINED"

        await pilot.press("d")  # toggles back
        await actions_done(app)
        assert not (await worker.try_claim(["comfyui"], "gpu-host-1", 0)).drained
        await fresh(pilot)

        await pilot.press("D")  # the whole machine of the selected GPU, once confirmed
        await wait_until(pilot, lambda: app.screen is not app.main_screen, "the confirmation")
        await pilot.press("y")
        await actions_done(app)
        assert (await worker.try_claim(["comfyui"], "gpu-host-1", 1)).drained
        assert "gpu-host-1 drained" in notes.last()
        await fresh(pilot)
        assert gpus.get_cell("gpu-host-1", "state").plain == "DRAINED"
        assert gpus.get_cell("gpu-host-1:1", "state").plain == "drained (host)"

        gpus.move_cursor(row=gpus.get_row_index("gpu-host-1"))
        await pilot.press("d")  # on a machine row, d toggles the machine
        await actions_done(app)
        assert not (await worker.try_claim(["comfyui"], "gpu-host-1", 1)).drained


async def test_pause_and_resume_a_service(make_app: MakeApp, aclient: AsyncClient) -> None:
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        queues = app.main_screen.queues
        await pilot.press("1")
        queues.move_cursor(row=queues.get_row_index("comfyui"))
        await pilot.press("p", "y")  # y: the confirmation
        await actions_done(app)
        stats = await aclient.stats()
        assert stats.service("comfyui").paused  # type: ignore[union-attr]
        assert not stats.service("a1111").paused  # type: ignore[union-attr]
        assert notes.last() == "comfyui paused: no new claims"
        await fresh(pilot)
        assert queues.get_cell("comfyui", "state").plain == "PAUSED"

        await pilot.press("p")
        await actions_done(app)
        assert not (await aclient.stats()).service("comfyui").paused  # type: ignore[union-attr]


async def test_readonly_hides_and_refuses_every_action(
    make_app: MakeApp,
    aclient: AsyncClient,
    publish: Callable[..., Awaitable[None]],
) -> None:
    job = await aclient.submit(comfy_graph())
    await publish("gpu-host-1", [gpu_record(0)])
    app, notes = make_app(readonly=True), Notes()
    assert app.ctx.operator is None
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        screen = app.main_screen
        shown = {b.binding.action for b in screen.active_bindings.values()}
        for action in ("kill", "retry", "bump(1)", "set_priority", "toggle_pause", "toggle_drain"):
            assert action not in shown, action
        assert {"cycle_state", "cycle_service", "open_detail"} <= shown
        titles = {title for title, _, _ in screen.palette_commands()}
        assert "Kill job" not in titles and "Refresh now" in titles

        select_job(app, job.id)
        await pilot.press("k", "plus", "r", "P")
        assert app.screen is screen  # no confirmation, no prompt
        # Each key says it is read-only rather than doing nothing silently.
        assert [m for _, m in notes.messages[-4:]] == [
            f"read-only dashboard: {key} does nothing here" for key in ("k", "+/-", "r", "P")
        ]
        await pilot.press("1", "p", "3", "d", "D")
        await screen.run_action("kill")  # the command palette path
        screen.action_bump(1)  # even a direct call cannot reach Redis
        await actions_done(app)

        assert (await aclient.status(job.id)).state is JobState.QUEUED
        assert (await aclient.status(job.id)).priority == 0
        stats = await aclient.stats()
        assert not stats.service("comfyui").paused  # type: ignore[union-attr]
        assert stats.drained == ()
        assert notes.messages[-1] == ("warning", "read-only dashboard: actions are off")
        summary = str(screen.summary.render())
        assert "READ-ONLY" in summary


async def test_palette_lists_the_actions(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Kill job", "Retry job", "Set priority", "Drain / undrain", "Quit"} <= titles
