"""Undraining shows at once: the drain set in Redis is the truth, not the supervisor's record
(which catches up at its next publish)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fleetq import AsyncClient
from tests.tui.dash_helpers import actions_done, first_snapshot, fresh, gpu_record
from tests.tui.test_actions import MakeApp, Notes

Publish = Callable[..., Awaitable[None]]


async def test_undrained_machine_shows_idle_gpus_at_once(
    make_app: MakeApp, aclient: AsyncClient, publish: Publish
) -> None:
    await aclient.drain("gpu-host-1")
    # What the supervisor publishes while its machine is drained; it does not publish again.
    drained = {"drained": True, "blocked": "drained by operator"}
    await publish("gpu-host-1", [gpu_record(0, **drained), gpu_record(1, **drained)])
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        gpus = app.main_screen.gpus
        assert gpus.get_cell("gpu-host-1:0", "state").plain == "drained (host)"
        await pilot.press("3")
        gpus.move_cursor(row=gpus.get_row_index("gpu-host-1"))
        await pilot.press("d")  # undrain: no question
        await actions_done(app)
        assert notes.last() == "gpu-host-1 undrained"
        await fresh(pilot)
        assert gpus.get_cell("gpu-host-1", "state").plain == ""
        assert gpus.get_cell("gpu-host-1:0", "state").plain == "idle"
        assert gpus.get_cell("gpu-host-1:1", "state").plain == "idle"
