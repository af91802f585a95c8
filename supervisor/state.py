"""What each puller is doing right now, for the publisher and the logs.

The only state a supervisor keeps outside Redis; after a crash it is recoverable from the
leases in Redis (the reaper requeues what a dead supervisor held).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fleetq.model import ClaimedJob


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
    #: idle (waiting for work), running, blocked (gate closed), stopping, stopped
    status: str = "idle"
    blocked: str | None = None
    job: CurrentJob | None = None
    jobs_done: int = 0

    def set_idle(self) -> None:
        self.status, self.blocked = "idle", None

    def set_blocked(self, reason: str) -> None:
        self.status, self.blocked = "blocked", reason

    def set_running(self, job: ClaimedJob) -> None:
        self.status, self.blocked = "running", None
        self.job = CurrentJob(job.id, job.service, int(time.time() * 1000))

    def set_progress(self, progress: float, text: str) -> None:
        if self.job is not None:
            self.job.progress, self.job.progress_text = progress, text

    def set_finished(self) -> None:
        self.job = None
        self.jobs_done += 1
        self.status = "idle"

    def job_record(self) -> dict[str, Any] | None:
        if self.job is None:
            return None
        return {
            "id": self.job.id,
            "service": self.job.service,
            "progress": round(self.job.progress, 4),
            "progress_text": self.job.progress_text,
            "started_ms": self.job.started_ms,
        }
