"""Helpers for the dashboard tests: payloads, GPU records, and waiting on a condition
(never a fixed sleep)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot

from fleetq.records import GpuRecord
from tests.helpers import eventually as eventually  # re-exported for the tests here
from tui.app import FleetqApp

Predicate = Callable[[], "bool | Awaitable[bool]"]


def comfy_graph(seed: int = 0, ckpt: str = "sd_xl_base_1.0.safetensors") -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64}},
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "model": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "t"}},
    }


def gpu_record(index: int, util: int | None = 50, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "index": index,
        "name": "RTX 4090",
        "uuid": f"GPU-{index}",
        "health": "healthy",
        "reasons": [],
        "blocked": None,
        "drained": False,
        "services": ["comfyui"],
        "job": None,
        "readings": {
            "utilization_gpu_pct": util,
            "memory_used_mb": 4096,
            "memory_total_mb": 24564,
            "temperature_c": 60,
            "temperature_slowdown_c": 90,
            "power_w": 250.0,
            "power_limit_w": 450.0,
        },
    }
    record.update(extra)
    return record


def typed_gpu(index: int, util: int | None = 50, **extra: Any) -> GpuRecord:
    """:func:`gpu_record` as the core reads it back."""
    record = GpuRecord.from_json(gpu_record(index, util, **extra))
    assert record is not None
    return record


async def wait_until(
    pilot: Pilot[Any], predicate: Predicate, what: str, timeout_s: float = 10.0
) -> None:
    """Let the app run until ``predicate`` (sync or async) holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await pilot.pause(0.02)


async def actions_done(app: FleetqApp) -> None:
    """Wait for the action workers (not the poller, which never ends)."""
    workers = [w for w in app.workers if w.group == "actions"]
    if workers:  # (an empty list would mean "every worker", the poller included)
        await app.workers.wait_for_complete(workers)


async def first_snapshot(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, FleetqApp)
    await wait_until(pilot, lambda: app.main_screen.snapshot is not None, "the first snapshot")


async def seq_after(pilot: Pilot[Any], seq: int) -> None:
    """Wait for a snapshot newer than ``seq`` to be shown."""
    app = pilot.app
    assert isinstance(app, FleetqApp)

    def newer() -> bool:
        snap = app.main_screen.snapshot
        return snap is not None and snap.seq > seq

    await wait_until(pilot, newer, f"a snapshot after #{seq}")


async def fresh(pilot: Pilot[Any]) -> None:
    """Ask for a refresh now and wait until data read after this call is on screen (not the
    answer of a read that was already in flight)."""
    app = pilot.app
    assert isinstance(app, FleetqApp)
    poller = app.main_screen.poller
    after = poller.reads_started
    poller.refresh_now()

    def shown() -> bool:
        return poller.last_read > after and app.main_screen.snapshot is poller.last

    await wait_until(pilot, shown, f"a snapshot read after read #{after}")
