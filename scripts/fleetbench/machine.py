"""Facts about the machine a benchmark ran on, and CPU time of its processes."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import psutil
import redis

from fleetbench.paths import ROOT


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def machine_facts(port: int) -> dict[str, str]:
    conn = redis.Redis(port=port)
    try:
        server = conn.info("server")
    finally:
        conn.close()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
        check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "cpu": cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis_server": str(server["redis_version"]),
        "redis_py": importlib.metadata.version("redis"),
        "aiohttp": importlib.metadata.version("aiohttp"),
        "commit": commit or "unknown",
        "load_before": f"{os.getloadavg()[0]:.1f}",
    }


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                return "AMD EPYC" if "EPYC" in name else name
    return platform.processor() or "unknown"
