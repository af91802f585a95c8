"""The benchmark's sizes, the targets from the design brief, and small helpers."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetbench.paths import ROOT

DOC = ROOT / "docs" / "BENCHMARKS.md"
HEADING = "## Queue core (scripts/bench_queue.py)"
SERVICE = "comfyui"
HOST = "bench"
WORKFLOW = {"1": {"class_type": "Noop", "inputs": {}}}
COMPETITORS = ("arq", "rq", "saq", "bullmq")
ALL_SYSTEMS = ("fleetq", *COMPETITORS)
PHASE_TIMEOUT_S = 900.0

# Targets from the design brief.
LATENCY_P50_MS = 2.0
LATENCY_P99_MS = 10.0
THROUGHPUT_VS_ARQ = 2.0
SCALE_RATIO = 1.5

log = logging.getLogger("bench_queue")


# -- sizes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    latency_samples: int  # per blocking system
    polling_samples: int  # arq: each sample waits up to its poll delay (0.5 s)
    jobs: int  # throughput: jobs per system
    small_size: int  # (c): the small queue
    seed_size: int  # (c): the large queue
    calls: int  # (c): calls timed per operation and size
    rounds: int  # throughput: passes over all systems (the median is reported)
    concurrency: int = 8


FULL = Sizes(1000, 100, 10_000, 1_000, 1_000_000, 500, 3)
QUICK = Sizes(200, 8, 1_000, 1_000, 20_000, 100, 1)
TINY = Sizes(100, 0, 400, 1_000, 5_000, 50, 1)


# -- small helpers --------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
