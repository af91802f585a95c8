"""The dashboard's actions, each through the same :class:`fleetq.AsyncClient` calls the CLI
uses. Every method returns the line to show the operator; refusals raise ``FleetqError``."""

from __future__ import annotations

import getpass
import os
import socket

from fleetq import AsyncClient, JobStatus
from fleetq.fleet import encode_record
from tui.widgets.format import queue_position


def operator_identity() -> str:
    """Who acts, for the audit trail: ``tui:user@host`` (the user and machine running it)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = str(os.getuid())
    return f"tui:{user}@{socket.gethostname()}"


class Operator:
    def __init__(self, client: AsyncClient, identity: str | None = None) -> None:
        self.client = client
        #: Recorded with each cancel and bump (the job's timeline shows it).
        self.identity = identity or operator_identity()

    async def set_priority(self, job: JobStatus, priority: int) -> str:
        position = await self.client.bump(job.id, priority)
        where = "waiting out its retry backoff" if position is None else queue_position(position)
        return f"job {job.id}: priority {job.priority} -> {priority}, now {where}"

    async def bump(self, job: JobStatus, delta: int) -> str:
        """Move the priority by ``delta`` in Redis (atomic: quick presses all count)."""
        bumped = await self.client.bump_by(job.id, delta, by=self.identity)
        where = (
            "waiting out its retry backoff"
            if bumped.position is None
            else queue_position(bumped.position)
        )
        return f"job {job.id}: priority {bumped.old_priority} -> {bumped.priority}, now {where}"

    async def kill(self, job: JobStatus) -> str:
        outcome = await self.client.cancel(job.id, by=self.identity)
        if outcome == "cancelled":
            return f"job {job.id} cancelled"
        where = f" on {job.host}:{job.gpu}" if job.host else ""
        return f"job {job.id}: cancel requested{where}; its GPU was told to interrupt it"

    async def retry(self, job: JobStatus) -> str:
        position = await self.client.retry(job.id)
        where = "" if position is None else f" at {queue_position(position)}"
        return f"job {job.id} requeued{where}"

    async def set_paused(self, service: str, paused: bool) -> str:
        if paused:
            changed = await self.client.pause(service)
            return f"{service} paused: no new claims" if changed else f"{service} was paused"
        changed = await self.client.resume(service)
        return f"{service} resumed" if changed else f"{service} was not paused"

    async def set_drained(self, target: str, drained: bool) -> str:
        if drained:
            changed = await self.client.drain(target)
            return f"{target} drained: no new claims" if changed else f"{target} was drained"
        changed = await self.client.undrain(target)
        return f"{target} undrained" if changed else f"{target} was not drained"

    async def clear_health(self, host: str, gpu: int) -> str:
        """Ask a supervisor to forget a GPU's sticky findings (as ``fleetq clear-health``)."""
        # The same control stream entry the CLI's Client.send_control writes.
        store = self.client.store
        command = encode_record({"type": "clear-health", "gpu": gpu})
        await store.command("xadd", store.keys.control(host), {"command": command}, maxlen=100)
        return (
            f"asked {host} to clear the sticky health findings of GPU {gpu}; its next check decides"
        )
