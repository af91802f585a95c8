"""The jobs and the chaos schedule, drawn from the seed before the run starts."""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fleetbench.chaos.options import ChaosOptions
from supervisor.sim.comfyui.workflows import fake_work_workflow

# -- the workload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobPlan:
    """One job of the workload; ``index`` is its tag (the FakeWork ``seed``)."""

    index: int
    kind: str  # ok | error | hang
    seconds: float
    steps: int
    priority: int
    width: int
    height: int
    color: int

    def workflow(self) -> dict[str, Any]:
        seconds = 0.05 if self.kind == "hang" else self.seconds
        return fake_work_workflow(
            seconds,
            self.steps,
            self.kind,
            seed=self.index,
            filename_prefix=f"chaos/{self.index}/job{self.index}",
            width=self.width,
            height=self.height,
            color=self.color,
        )


def plan_jobs(options: ChaosOptions) -> list[JobPlan]:
    rng = random.Random(f"{options.seed}:jobs")
    plans = []
    for index in range(options.jobs):
        u = rng.random()
        kind = "error" if u < options.error_fraction else "ok"
        if options.error_fraction <= u < options.error_fraction + options.hang_fraction:
            kind = "hang"
        plans.append(
            JobPlan(
                index=index,
                kind=kind,
                seconds=round(rng.uniform(options.min_work_s, options.max_work_s), 2),
                steps=rng.randint(0, 3),
                priority=rng.randint(-3, 3),
                width=rng.randint(8, 40),
                height=rng.randint(8, 40),
                color=rng.getrandbits(24),
            )
        )
    return plans


@dataclass(frozen=True)
class ChaosEvent:
    at_s: float
    kind: str
    params: tuple[tuple[str, float], ...]

    def get(self, name: str) -> float:
        return dict(self.params)[name]


def plan_schedule(options: ChaosOptions) -> list[ChaosEvent]:
    """Every chaos event with its offset from the first submit, drawn from the seed."""
    rng = random.Random(f"{options.seed}:schedule")
    start, end = options.warmup_s, max(options.warmup_s + 1.0, options.submit_s)
    events: list[ChaosEvent] = []

    def spread(kind: str, count: int, draw: Callable[[], dict[str, float]]) -> None:
        slot = (end - start) / max(1, count)
        for i in range(count):
            at = start + slot * (i + rng.uniform(0.1, 0.9))
            events.append(ChaosEvent(round(at, 3), kind, tuple(sorted(draw().items()))))

    sups, gpus = options.supervisors, options.gpus
    spread(
        "supervisor_kill",
        options.supervisor_kills,
        lambda: {"target": rng.randrange(sups), "down_s": rng.uniform(0.2, 3.0)},
    )
    spread(
        "supervisor_term",
        options.supervisor_terms,
        lambda: {"target": rng.randrange(sups), "down_s": rng.uniform(0.2, 2.0)},
    )
    spread("redis_kill", options.redis_kills, lambda: {"down_s": rng.uniform(0.3, 3.0)})
    spread(
        "fake_restart",
        options.fake_restarts,
        lambda: {
            "target": rng.randrange(sups),
            "gpu": rng.randrange(gpus),
            "delay_s": rng.uniform(0.0, 1.5),
        },
    )
    spread(
        "xid",
        options.xids,
        lambda: {
            "target": rng.randrange(sups),
            "gpu": rng.randrange(gpus),
            "clear_after_s": rng.uniform(1.0, 5.0),
        },
    )
    spread("cancel", options.cancels, lambda: {"u": rng.random()})
    spread("bump", options.bumps, lambda: {"u": rng.random(), "priority": rng.randint(-5, 9)})
    spread("zombie", options.zombies, lambda: {"gpu": rng.randrange(8)})
    spread("redis_stall", options.stalls, lambda: {})
    lease_s = options.lease_ms / 1000
    spread(
        "supervisor_pause",
        options.supervisor_pauses,
        lambda: {"target": rng.randrange(sups), "pause_s": rng.uniform(1.5, 3.0) * lease_s},
    )
    events.sort(key=lambda e: (e.at_s, e.kind))
    return events


def schedule_digest(plans: Sequence[JobPlan], events: Sequence[ChaosEvent]) -> str:
    text = json.dumps([[asdict(p) for p in plans], [asdict(e) for e in events]])
    return f"{zlib.crc32(text.encode()):08x}"
