"""What a chaos run records while it runs, for the checks to compare with Redis afterwards."""

from __future__ import annotations

import asyncio
import collections
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from fleetbench.chaos.fleet import Fleet
from fleetbench.chaos.options import ChaosOptions
from fleetbench.chaos.workload import ChaosEvent, JobPlan
from fleetq import AsyncClient, Client
from fleetq.errors import (
    RedisUnavailable,
)

# -- the run ---------------------------------------------------------------------------------

T = TypeVar("T")


@dataclass
class Accepted:
    plan: JobPlan
    job_id: str
    sent: float
    acked: float


@dataclass
class Request:
    """An operator write: ``reply`` is what Redis said, or ``unknown`` when the connection
    failed (it may or may not have been applied)."""

    at: float
    reply: str
    priority: int | None = None


async def retry_unavailable(call: Callable[[], Awaitable[T]], give_up_s: float = 60.0) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_s
    while True:
        try:
            return await call()
        except RedisUnavailable:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)  # Redis is being restarted: a reconnect backoff


class ChaosState:
    """What the run saw and did, shared by the fault injectors, the run loop and the checks."""

    # Set by ChaosRun.run for the run's duration.
    client: AsyncClient
    http: aiohttp.ClientSession
    sync_client: Client

    def __init__(
        self, options: ChaosOptions, fleet: Fleet, plans: list[JobPlan], schedule: list[ChaosEvent]
    ) -> None:
        self.o = options
        self.fleet = fleet
        self.plans = plans
        self.schedule = schedule
        self.settings = fleet.lossy_settings
        self.counts: collections.Counter[str] = collections.Counter()
        self.violations: list[str] = []
        self.accepted: list[Accepted] = []
        self.cancels: dict[str, list[Request]] = collections.defaultdict(list)
        self.bumps: dict[str, list[Request]] = collections.defaultdict(list)
        #: job id -> when a zombie claimed it
        self.zombie_jobs: dict[str, float] = {}
        #: (supervisor, GPU, XID sent, cleared): no claim may start there in between.
        self.xid_windows: list[tuple[int, int, float, float]] = []
        self.redis_kills: list[float] = []
        self.redis_outages: list[tuple[float, float]] = []
        #: (supervisor, SIGSTOP, SIGCONT)
        self.pauses: list[tuple[int, float, float]] = []
        self.redis_down_s = 0.0
        self.redis_reload_max_s = 0.0
        self.redis_down = False
        self.stalling = False
        #: (DEBUG SLEEP sent, answered)
        self.stalls: list[tuple[float, float]] = []
        self.restarting: set[int] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.history: dict[int, dict[str, Any]] = {}
        self.timings: dict[str, float] = {}

    def violation(self, text: str) -> None:
        self.violations.append(text)
        print(f"chaos: VIOLATION {text}", file=sys.stderr, flush=True)

    def say(self, text: str) -> None:
        if self.o.progress:
            print(f"chaos: {text}", file=sys.stderr, flush=True)
