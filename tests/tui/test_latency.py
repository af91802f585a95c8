"""Queue latency percentiles (from the starts the dashboard saw) and the time to clear the
backlog at the last minute's rate."""

from __future__ import annotations

from dataclasses import replace

from fleetq import AsyncClient, JobState
from fleetq.model import Output
from fleetq.worker import WorkerQueue
from tests.tui.dash_helpers import comfy_graph, first_snapshot, fresh
from tests.tui.test_actions import MakeApp
from tui.demo import demo_source
from tui.latency import LatencyTracker, percentile


def test_percentiles_count_each_start_once() -> None:
    tracker = LatencyTracker()
    base = next(
        j for j in demo_source().jobs if j.state is JobState.RUNNING and j.service == "comfyui"
    )
    jobs = [
        replace(base, id=f"{i:016x}", submitted_ms=0, started_ms=wait)
        for i, wait in enumerate(range(1000, 101_000, 1000))
    ]
    tracker.observe(jobs)
    tracker.observe(jobs)  # seen again on the next refresh: not counted twice
    latency = tracker.latency("comfyui", now_ms=200_000)
    assert latency is not None and latency.samples == 100
    assert (latency.p50_ms, latency.p90_ms, latency.p99_ms) == (50_000, 90_000, 99_000)
    assert percentile([5], 0.99) == 5
    # Fifteen minutes later they have left the window.
    assert tracker.latency("comfyui", now_ms=101_000 + 15 * 60_000 + 1) is None


async def test_queue_row_shows_wait_percentiles_and_clear_time(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue
) -> None:
    for i in range(8):
        await aclient.submit(comfy_graph(i))
    claimed = [await worker.try_claim(["comfyui"], "gpu-host-1", i) for i in range(3)]
    for outcome in claimed[:2]:
        assert outcome.job is not None
        await worker.complete(outcome.job, [Output("a.png", "image/png", b"x")])
    app = make_app()
    async with app.run_test(size=(200, 48)) as pilot:
        await first_snapshot(pilot)
        await fresh(pilot)
        queues = app.main_screen.queues
        # 5 ready jobs, 2 finished in the last minute: 2m30s, shown as 2m.
        assert queues.get_cell("comfyui", "clears").plain == "2m"
        assert queues.get_cell("comfyui", "latency").plain == "0s/0s/0s"
        assert queues.get_cell("a1111", "clears").plain == "-"
        snap = app.main_screen.snapshot
        assert snap is not None and snap.latency["comfyui"].samples == 1
        assert any(j.state is JobState.RUNNING for j in snap.jobs)
