"""Continuous load for the failover tests, and a ledger that counts what a failover lost.

A :class:`~fleetq.Client` in a thread submits jobs at a steady pace; asyncio workers (a
:class:`~fleetq.worker.WorkerQueue` with its own blocking store, like a supervisor's puller)
claim and complete them, retrying writes while Redis is away exactly as the supervisor does
(``RedisUnavailable`` -> retry, ``StaleLease`` -> the attempt is over). A reaper pass runs
every half second. Only what a caller was told succeeded counts as acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fleetq import Client, Settings
from fleetq.errors import JobNotFound, NotReplicated, RedisUnavailable, StaleLease
from fleetq.model import JobState, JobStatus, Output
from fleetq.worker import WorkerQueue

GRAPH: dict[str, Any] = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ha"}},
}
OUTPUT = Output("ha.png", "image/png", b"\x89PNG\r\n\x1a\nfleetq")


@dataclass
class Ledger:
    """What the callers were told. Times are ``time.monotonic()``."""

    submitted: dict[str, float] = field(default_factory=dict)
    #: Submits that raised NotReplicated: written on the primary, not confirmed by a replica.
    unconfirmed_submits: list[str] = field(default_factory=list)
    refused_submits: int = 0
    #: job id -> the claim count it had when our complete() returned.
    completed: dict[str, int] = field(default_factory=dict)
    completed_at: dict[str, float] = field(default_factory=dict)
    unconfirmed_completes: list[str] = field(default_factory=list)
    #: Completes refused as stale: the claim itself was lost (or the job was reaped).
    stale_completes: list[str] = field(default_factory=list)
    claims: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    failover_at: float = 0.0

    def longest_submit_gap_s(self) -> float:
        times = sorted(self.submitted.values())
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


@dataclass
class Verdict:
    """The final count, read from the primary after the drain."""

    acked_submits: int
    lost_submits: list[str]
    acked_completes: int
    lost_completes: list[str]
    unconfirmed_submits_lost: int
    ran_twice: int
    not_finished: list[str]

    def line(self, ledger: Ledger, label: str) -> str:
        return (
            f"[{label}] acked submits {self.acked_submits}, lost {len(self.lost_submits)}; "
            f"acked completes {self.acked_completes}, lost {len(self.lost_completes)}; "
            f"refused submits {ledger.refused_submits}; unconfirmed (NotReplicated) submits "
            f"{len(ledger.unconfirmed_submits)} of which lost {self.unconfirmed_submits_lost}, "
            f"completes {len(ledger.unconfirmed_completes)}; stale completes "
            f"{len(ledger.stale_completes)}; jobs run twice {self.ran_twice}; longest gap "
            f"between acked submits {ledger.longest_submit_gap_s():.2f} s; "
            f"errors {dict(ledger.errors)}{self._when(ledger)}"
        )

    def _when(self, ledger: Ledger) -> str:
        if not self.lost_submits:
            return ""
        times = sorted(ledger.submitted[j] - ledger.failover_at for j in self.lost_submits)
        return f"; lost submits acked {times[0]:+.2f} .. {times[-1]:+.2f} s from the failover"


def submit_forever(
    settings: Settings, stop: threading.Event, ledger: Ledger, pace_s: float
) -> None:
    with Client(settings) as client:
        while not stop.is_set():
            try:
                job = client.submit(GRAPH, service="comfyui")
                ledger.submitted[job.id] = time.monotonic()
            except NotReplicated as e:
                ledger.unconfirmed_submits.append(e.job_id)
            except RedisUnavailable as e:
                ledger.refused_submits += 1
                ledger.errors[type(e).__name__] += 1
                stop.wait(0.05)
            stop.wait(pace_s)


async def _complete(queue: WorkerQueue, job: Any, ledger: Ledger) -> None:
    """Like the supervisor's until_written: retry while Redis is away; stale ends it."""
    while True:
        try:
            await queue.complete(job, [OUTPUT])
        except NotReplicated:
            ledger.unconfirmed_completes.append(job.id)
            await asyncio.sleep(0.05)
            continue
        except RedisUnavailable as e:
            ledger.errors[type(e).__name__] += 1
            await asyncio.sleep(0.05)
            continue
        except StaleLease:
            ledger.stale_completes.append(job.id)
            return
        ledger.completed[job.id] = job.claims
        ledger.completed_at[job.id] = time.monotonic()
        return


async def work_forever(settings: Settings, gpu: int, stop: asyncio.Event, ledger: Ledger) -> None:
    queue = WorkerQueue(settings)
    blocking = WorkerQueue(settings).store
    try:
        while not stop.is_set():
            try:
                outcome = await queue.claim(["comfyui"], "ha-host", gpu, 0.3, blocking=blocking)
            except RedisUnavailable as e:
                ledger.errors[type(e).__name__] += 1
                await asyncio.sleep(0.05)
                continue
            if outcome.job is not None:
                ledger.claims += 1
                await _complete(queue, outcome.job, ledger)
    finally:
        await queue.aclose()
        await blocking.aclose()


async def reap_forever(settings: Settings, stop: asyncio.Event) -> None:
    queue = WorkerQueue(settings)
    try:
        while not stop.is_set():
            with contextlib.suppress(RedisUnavailable):
                await queue.reap("ha-reaper")
            await asyncio.sleep(0.5)
    finally:
        await queue.aclose()


def verdict(settings: Settings, ledger: Ledger) -> Verdict:
    """Read every job the callers heard of from the (new) primary."""
    lost_submits: list[str] = []
    lost_completes: list[str] = []
    not_finished: list[str] = []
    ran_twice = unconfirmed_lost = 0
    with Client(settings) as client:
        states: dict[str, JobStatus | None] = {}
        for job_id in {*ledger.submitted, *ledger.unconfirmed_submits}:
            try:
                states[job_id] = client.status(job_id)
            except JobNotFound:
                states[job_id] = None
        for job_id in ledger.submitted:
            status = states[job_id]
            if status is None:
                lost_submits.append(job_id)
                continue
            if status.state is not JobState.COMPLETED:
                not_finished.append(f"{job_id}:{status.state}")
            ran_twice += status.claims > 1
        unconfirmed_lost = sum(states[j] is None for j in ledger.unconfirmed_submits)
        for job_id, claims in ledger.completed.items():
            found = states.get(job_id)
            if found is None:
                with contextlib.suppress(JobNotFound):
                    found = client.status(job_id)
            if found is None or found.state is not JobState.COMPLETED or found.claims > claims:
                lost_completes.append(job_id)
    return Verdict(
        acked_submits=len(ledger.submitted),
        lost_submits=lost_submits,
        acked_completes=len(ledger.completed),
        lost_completes=lost_completes,
        unconfirmed_submits_lost=unconfirmed_lost,
        ran_twice=ran_twice,
        not_finished=not_finished,
    )
