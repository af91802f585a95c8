"""The dashboard's actions, each through the same :class:`fleetq.AsyncClient` calls the CLI
uses. Every method returns the line to show the operator; refusals raise ``FleetqError``."""

from __future__ import annotations

from fleetq import AsyncClient, JobStatus
from fleetq.identity import operator_identity as identity_of
from tui.widgets.format import queue_position


def operator_identity() -> str:
    """Who acts, for the audit trail: ``tui:user@host`` (the user and machine running it)."""
    return identity_of("tui")


class Operator:
    def __init__(self, client: AsyncClient, identity: str | None = None) -> None:
        self.client = client
        #: Recorded with each action (the job's timeline and the event log show it).
        self.identity = identity or operator_identity()

    async def set_priority(self, job: JobStatus, priority: int) -> str:
        position = await self.client.bump(job.id, priority, by=self.identity)
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
        position = await self.client.retry(job.id, by=self.identity)
        where = "" if position is None else f" at {queue_position(position)}"
        return f"job {job.id} requeued{where}"

    async def set_paused(self, service: str, paused: bool) -> str:
        if paused:
            changed = await self.client.pause(service, by=self.identity)
            return f"{service} paused: no new claims" if changed else f"{service} was paused"
        changed = await self.client.resume(service, by=self.identity)
        return f"{service} resumed" if changed else f"{service} was not paused"

    async def set_drained(self, target: str, drained: bool) -> str:
        if drained:
            changed = await self.client.drain(target, by=self.identity)
            return f"{target} drained: no new claims" if changed else f"{target} was drained"
        changed = await self.client.undrain(target, by=self.identity)
        return f"{target} undrained" if changed else f"{target} was not drained"

    async def clear_health(self, host: str, gpu: int) -> str:
        """Ask a supervisor to forget a GPU's sticky findings (as ``fleetq clear-health``)."""
        command = {"type": "clear-health", "gpu": gpu}
        await self.client.send_control(host, command, by=self.identity)
        return (
            f"asked {host} to clear the sticky health findings of GPU {gpu}; its next check decides"
        )
