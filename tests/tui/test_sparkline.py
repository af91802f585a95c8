"""The utilization sparkline: always 20 cells, each the average of its seconds, a pattern that
moves instead of reshuffling, and greyed once the GPU is offline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.tui.dash_helpers import first_snapshot, fresh, gpu_record, wait_until
from tests.tui.test_actions import MakeApp
from tui.widgets.gpus import SPARK_WIDTH

Publish = Callable[..., Awaitable[None]]


async def test_sparkline_width_average_and_steady_pattern(
    make_app: MakeApp, publish: Publish
) -> None:
    now = [1_800_000_000.0]
    await publish("gpu-host-1", [gpu_record(0, util=100)])
    app = make_app(clock=lambda: now[0])
    lines: list[str] = []
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        lines.append(app.main_screen.gpus.get_cell("gpu-host-1:0", "util").plain[6:])
        for second in range(1, 27):
            # Busy one second in three.
            await publish("gpu-host-1", [gpu_record(0, util=100 if second % 3 == 0 else 0)])
            now[0] += 1.0
            await fresh(pilot)
            lines.append(app.main_screen.gpus.get_cell("gpu-host-1:0", "util").plain[6:])
    assert all(len(line) == SPARK_WIDTH for line in lines), lines
    # A third busy is not a solid bar (the newest cell averages the seconds it has so far).
    assert "█" not in "".join(line[:-1] for line in lines)
    # Within one 3-second group only the newest cell moves; the rest of the line stands still.
    assert lines[22][:-1] == lines[23][:-1]
    # ... and a finished group moves one cell left when the next one starts.
    assert lines[26][:-1] == lines[23][1:]


async def test_offline_gpu_sparkline_is_greyed(make_app: MakeApp, publish: Publish) -> None:
    await publish("gpu-host-9", [gpu_record(0, util=100)])
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await first_snapshot(pilot)
        # Coloured while online: checked on the snapshot of the long-lived record, before the
        # short-lived one goes out (that one may expire before the next line runs).
        gpus = app.main_screen.gpus
        online_style = str(gpus.get_cell("gpu-host-9:0", "util").spans[-1].style)
        assert "green" in online_style or "yellow" in online_style, online_style
        await publish("gpu-host-9", [gpu_record(0, util=100)], ttl_ms=300)  # then it goes

        def offline() -> bool:
            snap = app.main_screen.snapshot
            return snap is not None and not snap.hosts[0].online

        await wait_until(pilot, offline, "the host record to expire")
        await fresh(pilot)
        cell = gpus.get_cell("gpu-host-9:0", "util")
        assert "█" in cell.plain  # the last minute is still drawn ...
        styles = {str(span.style) for span in cell.spans} | {str(cell.style)}
        assert not any("green" in s or "yellow" in s for s in styles), styles  # ... greyed
