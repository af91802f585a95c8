"""Relative bumps are atomic in Redis: quick presses all count, whatever the dashboard shows."""

from __future__ import annotations

import pytest

from fleetq import AsyncClient, Client, InvalidTransition
from fleetq.errors import InvalidPriority
from tests.tui.dash_helpers import actions_done, comfy_graph, first_snapshot
from tests.tui.test_actions import MakeApp, Notes, select_job


async def test_three_quick_plus_presses_add_three(make_app: MakeApp, aclient: AsyncClient) -> None:
    job = await aclient.submit(comfy_graph(), priority=1)
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        select_job(app, job.id)
        # Quick presses: no refresh lands between them, each one sees priority 1 on screen.
        poller = app.main_screen.poller
        poller.refresh_s = 3600
        poller.refresh_now = lambda: None  # type: ignore[method-assign]
        await pilot.press("plus", "plus", "plus")
        await actions_done(app)
        assert (await aclient.status(job.id)).priority == 4
        assert any(f"job {job.id}: priority 3 -> 4" in m for _, m in notes.messages)


async def test_bump_by_clamps_and_refuses(aclient: AsyncClient, client: Client) -> None:
    job = await aclient.submit(comfy_graph(), priority=999)
    bumped = await aclient.bump_by(job.id, 5)
    assert (bumped.old_priority, bumped.priority, bumped.position) == (999, 1000, 0)
    assert client.bump_by(job.id, -3).priority == 997
    with pytest.raises(InvalidPriority):
        await aclient.bump_by(job.id, 5000)
    await aclient.cancel(job.id)
    with pytest.raises(InvalidTransition):
        await aclient.bump_by(job.id, 1)
    assert (await aclient.status(job.id)).priority == 997
