"""Small things operators tripped over: keys offered where they make no sense, an outage
reported as a refusal."""

from __future__ import annotations

from textual.message import Message
from textual.notifications import Notify

from fleetq import AsyncClient, Settings
from fleetq.demo.embedded import RedisServer
from fleetq.model import Output
from fleetq.worker import WorkerQueue
from tests.tui.dash_helpers import actions_done, comfy_graph, first_snapshot, wait_until
from tests.tui.test_actions import MakeApp, Notes, select_job
from tui.app import create_app
from tui.screens.detail import JobDetailScreen


async def test_finished_job_offers_no_kill_or_priority(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue
) -> None:
    job = await aclient.submit(comfy_graph())
    claimed = await worker.try_claim(["comfyui"], "gpu-host-1", 0)
    assert claimed.job is not None
    await worker.complete(claimed.job, [Output("a.png", "image/png", b"x")])
    app, notes = make_app(), Notes()
    async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        screen = app.main_screen
        await pilot.press("s", "s", "s", "s")  # completed
        await wait_until(pilot, lambda: job.id in screen.jobs.rows, "the completed job")
        select_job(app, job.id)
        await pilot.pause()
        bindings = {b.binding.action: b.enabled for b in screen.active_bindings.values()}
        assert bindings["screen.kill"] is False
        assert bindings["screen.bump(1)"] is False and bindings["screen.set_priority"] is False
        await pilot.press("k")
        assert app.screen is screen  # no kill dialog for a finished job
        assert notes.last() == f"job {job.id} already ended (completed): nothing to kill"
        await pilot.press("plus")
        assert "only a queued job's priority can change" in notes.last()

        screen._open(job.id)
        await wait_until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "the detail")
        detail = app.screen
        await wait_until(pilot, lambda: detail.selected_job() is not None, "the job's status")
        shown = {b.binding.action: b.enabled for b in detail.active_bindings.values()}
        assert shown["kill"] is False and shown["bump(1)"] is False
        await pilot.press("k")
        assert app.screen is detail
        assert "nothing to kill" in notes.last()


class TitledNotes:
    def __init__(self) -> None:
        self.notes: list[tuple[str, str, str]] = []

    def __call__(self, message: Message) -> None:
        if isinstance(message, Notify):
            n = message.notification
            self.notes.append((n.title, n.severity, n.message))


async def test_an_action_during_an_outage_says_redis_is_down() -> None:
    with RedisServer() as server:
        settings = Settings(redis_url=server.url, namespace="tui-outage", socket_timeout_s=2.0,
                            block_timeout_s=1.0)  # fmt: skip
        async with AsyncClient(settings) as client:
            job = await client.submit(comfy_graph())
        app, notes = create_app(settings, refresh_s=0.1), TitledNotes()
        async with app.run_test(size=(160, 48), message_hook=notes) as pilot:
            await first_snapshot(pilot)
            select_job(app, job.id)
            server.kill()
            await pilot.press("plus")
            await actions_done(app)
            title, severity, message = notes.notes[-1]
            assert title == "Redis down" and severity == "error"
            assert message.startswith("not done, Redis is unreachable")
