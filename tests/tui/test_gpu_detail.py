"""Per-GPU fault "since" time, the clear-health action, and the GPU detail view (clocks, fan,
PCIe, ECC; N/A where the GPU does not report it)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fleetq import AsyncClient
from tests.tui.dash_helpers import actions_done, first_snapshot, fresh, gpu_record, wait_until
from tests.tui.test_actions import MakeApp, Notes
from tui.operator import operator_identity
from tui.screens.gpu_detail import GpuDetailScreen

Publish = Callable[..., Awaitable[None]]


def faulty(index: int) -> dict[str, object]:
    record = gpu_record(index, health="unhealthy", reasons=["XID 48: double-bit ECC error"])
    record["readings"].update(  # type: ignore[attr-defined]
        sm_clock_mhz=1980, memory_clock_mhz=10501, fan_pct=None, throttle_reasons=["SwPowerCap"],
        ecc_volatile_corrected=0, ecc_volatile_uncorrected=2,
    )  # fmt: skip
    return record


async def test_fault_since_gpu_detail_and_clear_health(
    make_app: MakeApp, aclient: AsyncClient, publish: Publish
) -> None:
    await publish("gpu-host-1", [gpu_record(0), faulty(1)])
    app, notes = make_app(), Notes()
    async with app.run_test(size=(200, 50), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        gpus = app.main_screen.gpus
        # Faulty before the dashboard started: "at least".
        assert gpus.get_cell("gpu-host-1:1", "health").plain.startswith("unhealthy ≥0s")
        # A fault that starts while it watches: since when, exactly.
        await publish("gpu-host-1", [faulty(0), faulty(1)])
        await fresh(pilot)
        assert gpus.get_cell("gpu-host-1:0", "health").plain.startswith("unhealthy 0s")
        await pilot.press("3")
        gpus.move_cursor(row=gpus.get_row_index("gpu-host-1:0"))
        await pilot.pause()
        assert "since " in str(gpus.border_subtitle) and "or earlier" not in str(
            gpus.border_subtitle
        )

        await pilot.press("g")
        await wait_until(pilot, lambda: isinstance(app.screen, GpuDetailScreen), "the GPU view")
        screen = app.screen
        assert isinstance(screen, GpuDetailScreen)
        text = str(screen.body.render())
        assert "XID 48: double-bit ECC error" in text
        assert any("SM clock" in line and "1,980 MHz" in line for line in text.splitlines())
        assert any(line.strip().startswith("fan") and "N/A" in line for line in text.splitlines())
        assert any("replay counter" in line and "N/A" in line for line in text.splitlines())
        assert any("since driver load" in line and "0 / 2" in line for line in text.splitlines())

        await pilot.press("c")
        await actions_done(app)
        assert "asked gpu-host-1 to clear the sticky health findings of GPU 0" in notes.last()
        store = aclient.store
        entries = await store.command("xrange", store.keys.control("gpu-host-1"), "-", "+")
        command = json.loads(entries[-1][1][b"command"])
        assert command == {"type": "clear-health", "gpu": 0, "by": operator_identity()}
        signal = await store.command("zrange", store.keys.signal("gpu-host-1"), 0, -1)
        assert signal == [b"streams"]  # the supervisor is woken to read it at once
        await pilot.press("escape")
        assert app.screen is app.main_screen
