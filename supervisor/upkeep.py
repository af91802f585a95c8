"""Upkeep tasks of a supervisor besides its pullers: the reaper of expired leases, and the
operator control channel (simulated faults, clearing sticky GPU health)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time

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


async def follow_control(queue: WorkerQueue, host: str, monitor: GpuMonitor, since_id: str) -> None:
    """Apply operator commands sent with ``fleetq fault HOST GPU SPEC``.

    ``{"type": "fault", "gpu": N, "spec": "xid=79"}`` injects a fault into a simulated GPU;
    ``{"type": "clear-health", "gpu": N}`` forgets sticky findings (real GPUs too).
    Commands older than ``since_id`` (a stream id: sent before this supervisor started) are
    skipped.
    """
    async for _entry_id, fields in queue.control_commands(host, since_id):
        await apply_control(fields.get("command", ""), monitor)


async def apply_control(raw: str, monitor: GpuMonitor) -> None:
    try:
        command = json.loads(raw)
        gpu = int(command["gpu"])
        kind = command["type"]
        who = str(command.get("by") or "an operator")[:200]
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
