"""Wider terminals give the columns that cut text (errors, health reasons, GPU names) the
room left over; narrow ones keep the name column in view when scrolling sideways."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual.widgets.data_table import ColumnKey

from fleetq import AsyncClient, JobError
from fleetq.model import FaultKind
from fleetq.worker import WorkerQueue
from tests.tui.dash_helpers import comfy_graph, first_snapshot, gpu_record, wait_until
from tests.tui.test_actions import MakeApp
from tui.widgets.synced_table import SyncedTable

Publish = Callable[..., Awaitable[None]]
REASON = "XID 79: GPU has fallen off the bus; reset it or reboot the machine"
ERROR = "CheckpointLoaderSimple: model file sd_xl_base_1.0_0.9vae.safetensors not found"


def width(table: SyncedTable, key: str) -> int:
    return table.columns[ColumnKey(key)].get_render_width(table)


async def test_wide_terminal_shows_long_text_in_full(
    make_app: MakeApp, aclient: AsyncClient, worker: WorkerQueue, publish: Publish
) -> None:
    job = await aclient.submit(comfy_graph())
    claimed = await worker.try_claim(["comfyui"], "gpu-host-1", 0)
    assert claimed.job is not None
    await worker.fail(claimed.job, FaultKind.FINAL, JobError("FileNotFoundError", ERROR))
    gpu = gpu_record(0, health="unhealthy", reasons=[REASON], name="NVIDIA H100 80GB HBM3")
    await publish("gpu-host-1", [gpu])
    app = make_app()
    async with app.run_test(size=(220, 60)) as pilot:
        await first_snapshot(pilot)
        screen = app.main_screen
        health = screen.gpus.get_cell("gpu-host-1:0", "health").plain
        assert REASON in health
        assert width(screen.gpus, "health") >= len(health) + 2
        name = screen.gpus.get_cell("gpu-host-1:0", "gpu").plain
        assert width(screen.gpus, "gpu") >= len(name) + 2
        await pilot.press("s", "s", "s")
        await wait_until(pilot, lambda: job.id in screen.jobs.rows, "the failed job")
        error = screen.jobs.get_cell(job.id, "progress").plain
        assert ERROR in error
        assert width(screen.jobs, "progress") >= len(error) + 2
        # Narrower: the columns shrink back to their least widths, and scroll sideways
        # with the name column fixed.
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: width(screen.jobs, "progress") == 36 + 2, "the shrink")
        assert screen.jobs.fixed_columns == 1 and screen.gpus.fixed_columns == 1
        assert screen.has_class("-compact")  # top borders only, no sideways scrollbar
        assert screen.jobs.size.height >= 8  # a useful page of jobs at 80x24
        screen.jobs.focus()
        await pilot.press(*["right"] * 60)
        assert screen.jobs.scroll_x > 0
        assert screen.jobs.get_cell(job.id, "id").plain == job.id  # the name column stays
        await pilot.resize_terminal(160, 48)
        await wait_until(pilot, lambda: not screen.has_class("-compact"), "the full layout")
