"""Upkeep tasks of a supervisor besides its pullers: the reaper of expired leases, the operator
control channel (simulated faults, clearing sticky GPU health, reading capabilities again),
and keeping the requirement classes and the GPUs' capabilities fresh."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence

from fleetq.errors import RedisUnavailable
from fleetq.outputs.base import OutputWriter
from fleetq.worker import WorkerQueue
from supervisor.gpu.errors import GpuError
from supervisor.gpu.faults import parse_fault
from supervisor.gpu.monitor import GpuMonitor

log = logging.getLogger(__name__)


async def reap_forever(queue: WorkerQueue, owner: str, interval_s: float) -> None:
    """Every supervisor reaps; the lock in the script makes it single-flight fleet-wide."""
    while True:
        try:
            outcome = await queue.reap(owner)
            if outcome.requeued or outcome.failed or outcome.cancelled:
                log.warning(
                    "reaper: expired leases: %d requeued, %d failed, %d cancelled",
                    outcome.requeued, outcome.failed, outcome.cancelled,
                )  # fmt: skip
            elif outcome.grace_until_ms is not None and not outcome.ran:
                log.debug("reaper: waiting out a grace period after an outage")
        except RedisUnavailable:
            pass  # the publisher and pullers already say so
        except Exception:
            log.exception("reaper: unexpected error")
        await asyncio.sleep(interval_s)  # the reaping period


async def watch_classes(queue: WorkerQueue, services: Sequence[str], interval_s: float) -> None:
    """Reload the requirement classes of ``services`` when their version moves: a new class
    reaches every machine within ``interval_s``, even one no claim of which was woken for it.
    One MGET per period while nothing changes."""
    while True:
        try:
            await queue.refresh_classes(services)
        except RedisUnavailable:
            pass  # the publisher and pullers already say so
        except Exception:
            log.exception("class watch: unexpected error")
        await asyncio.sleep(interval_s)  # the polling period


async def refresh_capabilities_forever(refresh: Refresh, interval_s: float) -> None:
    """Read every backend's capabilities again every ``interval_s`` (models added or removed
    on disk, custom nodes installed)."""
    while True:
        await asyncio.sleep(interval_s)  # the refresh period (the first read is the gate's)
        try:
            await refresh(None)
        except Exception:
            log.exception("capabilities refresh: unexpected error")


async def sweep_outputs_forever(outputs: OutputWriter) -> None:
    """Remove expired outputs from a store that does not expire them itself (the shared
    folder). Every supervisor sweeps; removing what another removed already is harmless."""
    interval_s = outputs.sweep_interval_s
    if interval_s is None:
        return  # Redis expires its own keys; S3 follows the bucket's lifecycle rule
    while True:
        try:
            await outputs.sweep(time.time())
        except Exception:
            log.exception("output sweeper: unexpected error")
        await asyncio.sleep(interval_s)  # expiry folders are this wide; no event to wait on


def reaper_owner(host: str) -> str:
    return f"{host}:{os.getpid()}"


#: Refreshes capabilities: of every GPU (None) or of one.
Refresh = Callable[[int | None], Awaitable[None]]


async def follow_control(
    queue: WorkerQueue,
    host: str,
    monitor: GpuMonitor,
    since_id: str,
    refresh: Refresh | None = None,
) -> None:
    """Apply operator commands sent with ``fleetq fault HOST GPU SPEC`` and the like.

    ``{"type": "fault", "gpu": N, "spec": "xid=79"}`` injects a fault into a simulated GPU;
    ``{"type": "clear-health", "gpu": N}`` forgets sticky findings (real GPUs too);
    ``{"type": "refresh-capabilities"}`` (``"gpu": N`` for one) reads the backends'
    capabilities again now. Commands older than ``since_id`` (a stream id: sent before this
    supervisor started) are skipped.
    """
    async for _entry_id, fields in queue.control_commands(host, since_id):
        await apply_control(fields.get("command", ""), monitor, refresh)


async def apply_control(raw: str, monitor: GpuMonitor, refresh: Refresh | None = None) -> None:
    try:
        command = json.loads(raw)
        kind = command["type"]
        who = str(command.get("by") or "an operator")[:200]
        if kind == "refresh-capabilities":
            gpu_or_all = None if command.get("gpu") is None else int(command["gpu"])
            log.info("control: reading capabilities again (asked by %s)", who)
            if refresh is not None:
                await refresh(gpu_or_all)
            return
        gpu = int(command["gpu"])
    except (ValueError, KeyError, TypeError):
        log.warning("control: ignoring malformed command %r", raw[:200])
        return
    try:
        if kind == "fault":
            fault = parse_fault(str(command.get("spec", "")))
            await monitor.inject(gpu, fault)  # "clear" also forgets sticky health findings
            log.warning(
                "control: injected fault %r into simulated GPU %d (asked by %s)",
                fault.spec,
                gpu,
                who,
            )
        elif kind == "clear-health":
            monitor.clear_faults(gpu)
            log.info(
                "control: cleared the sticky health findings of GPU %d (asked by %s)", gpu, who
            )
        else:
            log.warning("control: unknown command type %r", kind)
    except GpuError as e:
        log.warning("control: %s", e)
