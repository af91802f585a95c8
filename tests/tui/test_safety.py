"""Action keys act on what the focused pane has selected, say what they do, and ask first
before stopping work for a whole service or machine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fleetq import AsyncClient
from fleetq.worker import WorkerQueue
from tests.tui.dash_helpers import (
    actions_done,
    comfy_graph,
    first_snapshot,
    fresh,
    gpu_record,
    wait_until,
)
from tests.tui.test_actions import MakeApp, Notes, select_job
from tui.screens.confirm import ConfirmDrainMachine, ConfirmPause

Publish = Callable[..., Awaitable[None]]


async def test_keys_do_not_act_on_a_pane_out_of_focus(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue, publish: Publish
) -> None:
    job = await aclient.submit(comfy_graph())
    await publish("gpu-host-1", [gpu_record(0), gpu_record(1)])
    await publish("gpu-host-2", [gpu_record(0)])
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        screen = app.main_screen
        # The GPU pane's cursor rests on gpu-host-1, the queue pane's on comfyui ...
        screen.gpus.move_cursor(row=screen.gpus.get_row_index("gpu-host-1"))
        screen.queues.move_cursor(row=screen.queues.get_row_index("comfyui"))
        # ... while the operator looks at a job in the Jobs pane.
        select_job(app, job.id)
        await pilot.press("d", "D", "p")
        await actions_done(app)
        assert app.screen is screen
        stats = await aclient.stats()
        assert stats.drained == ()
        assert not stats.service("comfyui").paused  # type: ignore[union-attr]
        assert not (await worker.try_claim(["comfyui"], "gpu-host-1", 0)).drained
        said = [m for _, m in notes.messages[-3:]]
        assert "press 3 first" in said[0] and "press 3 first" in said[1]
        assert "press 1 first" in said[2]

        # Job keys do nothing in the GPU pane either.
        await pilot.press("3", "k", "plus")
        assert app.screen is screen
        assert "press 2 first" in notes.last()
        assert (await aclient.status(job.id)).priority == 0


async def test_pause_asks_first_and_names_the_service(
    make_app: MakeApp, aclient: AsyncClient
) -> None:
    for i in range(3):
        await aclient.submit(comfy_graph(i))
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        queues = app.main_screen.queues
        await pilot.press("1")
        queues.move_cursor(row=queues.get_row_index("comfyui"))
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmPause), "the confirmation")
        dialog = app.screen
        assert isinstance(dialog, ConfirmPause)
        assert "comfyui" in dialog.question.plain and "3 queued" in dialog.facts.plain
        await pilot.press("n")
        await actions_done(app)
        assert not (await aclient.stats()).service("comfyui").paused  # type: ignore[union-attr]
        assert notes.last() == "comfyui left running"

        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmPause), "the confirmation")
        await pilot.press("y")
        await actions_done(app)
        assert (await aclient.stats()).service("comfyui").paused  # type: ignore[union-attr]
        await fresh(pilot)
        await pilot.press("p")  # resuming stops nothing: no question
        await actions_done(app)
        assert app.screen is app.main_screen
        assert not (await aclient.stats()).service("comfyui").paused  # type: ignore[union-attr]


async def test_drain_machine_asks_first(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue, publish: Publish
) -> None:
    await publish("gpu-host-1", [gpu_record(0), gpu_record(1)])
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        gpus = app.main_screen.gpus
        await pilot.press("3")
        gpus.move_cursor(row=gpus.get_row_index("gpu-host-1:1"))
        await pilot.press("D")
        await wait_until(
            pilot, lambda: isinstance(app.screen, ConfirmDrainMachine), "the confirmation"
        )
        dialog = app.screen
        assert isinstance(dialog, ConfirmDrainMachine)
        assert dialog.machine == "gpu-host-1" and "2 GPUs" in dialog.facts.plain
        await pilot.press("n")
        await actions_done(app)
        assert not (await worker.try_claim(["comfyui"], "gpu-host-1", 0)).drained
        assert notes.last() == "gpu-host-1 left as it was"
