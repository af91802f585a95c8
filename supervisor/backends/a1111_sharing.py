"""Telling fleetq's own A1111 job from other clients' jobs on a shared instance.

``/sdapi/v1/progress`` has no job id: it describes whatever job holds A1111's lock. Where the
server answers ``POST /internal/progress`` (UI mode) the adapter asks about its own task id;
otherwise :class:`ForeignJobs` remembers the job that already ran when fleetq posted and
decides, poll by poll, whether it still runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

#: Two start times worked back from progress closer than this are taken for the same job.
SAME_START_S = 0.5


def running(state: Mapping[str, Any]) -> bool:
    """Does a progress ``state`` show a job holding the lock (``job_count`` -1 or more)?"""
    job_count = state.get("job_count")
    return isinstance(job_count, int) and not isinstance(job_count, bool) and job_count != 0


def snapshot(data: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies the running job in a ``/sdapi/v1/progress`` answer, with its start
    time worked back from ``eta_relative = elapsed / progress - elapsed`` (None if unknown)."""
    state = data.get("state")
    state = state if isinstance(state, Mapping) else {}
    keys = ("job_timestamp", "job", "job_count", "job_no", "sampling_step")
    found = {key: state.get(key) for key in keys}
    fraction, eta = data.get("progress"), data.get("eta_relative")
    started = None
    if isinstance(fraction, (int, float)) and isinstance(eta, (int, float)) and 0 < fraction < 1:
        started = time.time() - eta * fraction / (1 - fraction)
    found["started"] = started
    return found


class ForeignJobs:
    """Other clients' jobs met during one fleetq job."""

    def __init__(self) -> None:
        #: The last seen progress of the job that held the lock when ours was posted.
        self.at_post: dict[str, Any] | None = None
        #: The last poll saw another client's job running (so an interrupt would hit it).
        self.running = False
        #: Descriptions of the foreign jobs seen, for the job's details.
        self.seen: list[str] = []

    def add(self, description: str) -> bool:
        """Record a foreign job; True the first time it is seen."""
        if description in self.seen:
            return False
        self.seen.append(description)
        return True

    def running_at_post(self, data: Mapping[str, Any]) -> None:
        """A job already held the lock when ours was posted: it is not ours."""
        self.at_post = snapshot(data)
        self.running = True

    def idle(self) -> None:
        """Progress showed no job: the one seen at post time is over."""
        self.at_post = None
        self.running = False

    def still_running(self, data: Mapping[str, Any]) -> bool:
        """Is the job running now still the one that held the lock when ours was posted? It is
        over once progress shows another job: its start (worked back from the ETA), name or
        start second changed, its counters went back, or its batch count changed other than
        from the -1 start."""
        before = self.at_post
        if before is None:
            return False
        now = snapshot(data)
        start, start_before = now["started"], before["started"]
        if (
            start is not None
            and start_before is not None
            and (abs(start - start_before) > SAME_START_S)
        ):
            self.at_post = None
            return False
        if now["started"] is None:
            now["started"] = before["started"]
        counters = [now["job_no"], now["sampling_step"]]
        counters_before = [before["job_no"], before["sampling_step"]]
        numbers = all(isinstance(n, int) for n in counters + counters_before)
        same = (
            (now["job_timestamp"], now["job"]) == (before["job_timestamp"], before["job"])
            and (now["job_count"] == before["job_count"] or before["job_count"] == -1)
            and (not numbers or counters >= counters_before)
        )
        self.at_post = now if same else None
        return same
