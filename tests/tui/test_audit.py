"""Who paused a service or drained a machine or GPU: the queue and GPU panes say it under the
table for the row under the cursor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fleetq import AsyncClient
from tests.tui.dash_helpers import actions_done, first_snapshot, fresh, gpu_record, wait_until
from tests.tui.test_actions import MakeApp
from tui.operator import operator_identity


async def test_panes_name_who_paused_and_drained(
    make_app: MakeApp, aclient: AsyncClient, publish: Callable[..., Awaitable[None]]
) -> None:
    await publish("gpu-host-1", [gpu_record(0), gpu_record(1)])
    await aclient.drain("gpu-host-1:1", by="cli:bo@ops-2")
    app = make_app()
    who = operator_identity()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        queues = app.main_screen.queues
        await pilot.press("1")
        queues.move_cursor(row=queues.get_row_index("comfyui"))
        assert str(queues.border_subtitle) == ""
        await pilot.press("p", "y")  # y: the confirmation
        await actions_done(app)
        await wait_until(
            pilot, lambda: str(queues.border_subtitle) == f"comfyui paused by {who}", "the note"
        )
        await pilot.press("p")  # resumed: no note
        await actions_done(app)
        await wait_until(pilot, lambda: str(queues.border_subtitle) == "", "the note cleared")

        gpus = app.main_screen.gpus
        await pilot.press("3")
        gpus.move_cursor(row=gpus.get_row_index("gpu-host-1:1"))
        await fresh(pilot)
        assert "drained by cli:bo@ops-2" in str(gpus.border_subtitle)
        await pilot.press("D", "y")  # the whole machine, once confirmed
        await actions_done(app)
        await fresh(pilot)
        gpus.move_cursor(row=gpus.get_row_index("gpu-host-1"))
        await wait_until(
            pilot, lambda: str(gpus.border_subtitle) == f"gpu-host-1 drained by {who}", "the note"
        )
