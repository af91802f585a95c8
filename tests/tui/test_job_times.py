"""Ended jobs are listed newest first and their Age counts from the end; every job shows how
long it waited and ran; a running job is on try 1, not 0."""

from __future__ import annotations

from fleetq import AsyncClient, JobState
from fleetq.model import Output
from fleetq.worker import WorkerQueue
from tests.tui.dash_helpers import comfy_graph, first_snapshot, wait_until
from tests.tui.test_actions import MakeApp
from tui.widgets.format import age

HOUR_S = 3600.0


async def test_finished_list_counts_from_the_end_with_wait_and_run(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue
) -> None:
    ids = [(await aclient.submit(comfy_graph(i))).id for i in range(3)]
    claimed = [await worker.try_claim(["comfyui"], "gpu-host-1", i) for i in range(3)]
    # Finish them in the reverse order of submission.
    for outcome in reversed(claimed[1:]):
        assert outcome.job is not None
        await worker.complete(outcome.job, [Output("a.png", "image/png", b"x")])
    statuses = {i: await aclient.status(i) for i in ids}
    base = max(s.submitted_ms for s in statuses.values()) / 1000
    app = make_app(clock=lambda: base + HOUR_S)  # an hour later: ages differ by minutes
    async with app.run_test(size=(200, 48)) as pilot:
        await first_snapshot(pilot)
        jobs = app.main_screen.jobs
        running = ids[0]
        assert jobs.get_cell(running, "attempts").plain == "1/3"
        assert jobs.get_cell(running, "run").plain == age(
            int(HOUR_S * 1000) + int(base * 1000) - statuses[running].started_ms
        )  # type: ignore[operator]

        await pilot.press("s", "s", "s", "s")  # active -> queued -> running -> failed -> completed
        await wait_until(pilot, lambda: ids[1] in jobs.rows, "the completed jobs")
        labels = [c.label.plain for c in jobs.columns.values()]
        assert "Ended" in labels and "Age" not in labels
        now_ms = int((base + HOUR_S) * 1000)
        for job_id in ids[1:]:
            s = statuses[job_id]
            assert s.state is JobState.COMPLETED
            assert s.finished_ms is not None and s.started_ms is not None
            assert jobs.get_cell(job_id, "age").plain == age(now_ms - s.finished_ms)
            assert jobs.get_cell(job_id, "wait").plain == age(s.started_ms - s.submitted_ms)
            assert jobs.get_cell(job_id, "run").plain == age(s.finished_ms - s.started_ms)
            assert jobs.get_cell(job_id, "attempts").plain == "1/3"
