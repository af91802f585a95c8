"""What each puller is doing right now, for the publisher and the logs.

The only state a supervisor keeps outside Redis; after a crash it is recoverable from the
leases in Redis (the reaper requeues what a dead supervisor held).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fleetq.model import ClaimedJob
from fleetq.records import BlockedBy, GpuJobRecord, PullerStatus


@dataclass
class CurrentJob:
    id: str
    service: str
    started_ms: int
    progress: float = 0.0
    progress_text: str = ""


@dataclass
class PullerState:
    """Mutable, owned by one puller; the publisher reads it once a second."""

    gpu: int
    status: PullerStatus = PullerStatus.IDLE
    #: Why the puller does not claim, in words, and as a kind (None while it may claim).
    blocked: str | None = None
    blocked_by: BlockedBy | None = None
    job: CurrentJob | None = None
    jobs_done: int = 0

    @property
    def drained(self) -> bool:
        return self.blocked_by is BlockedBy.DRAINED

    def set_idle(self) -> None:
        self.status, self.blocked, self.blocked_by = PullerStatus.IDLE, None, None

    def set_blocked(self, by: BlockedBy, reason: str) -> None:
        self.status, self.blocked, self.blocked_by = PullerStatus.BLOCKED, reason, by

    def set_running(self, job: ClaimedJob) -> None:
        self.status, self.blocked, self.blocked_by = PullerStatus.RUNNING, None, None
        self.job = CurrentJob(job.id, job.service, int(time.time() * 1000))

    def set_progress(self, progress: float, text: str) -> None:
        if self.job is not None:
            self.job.progress, self.job.progress_text = progress, text

    def set_finished(self) -> None:
        self.job = None
        self.jobs_done += 1
        self.status = PullerStatus.IDLE

    def job_record(self) -> GpuJobRecord | None:
        if self.job is None:
            return None
        job = self.job
        return GpuJobRecord(job.id, job.service, job.progress, job.progress_text, job.started_ms)
