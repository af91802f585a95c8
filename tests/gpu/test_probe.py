"""scripts/nvml_probe.py: runs on simulated GPUs, and says clearly when NVML is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).resolve().parents[2] / "scripts" / "nvml_probe.py"


def run_probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROBE), *args], capture_output=True, text=True, timeout=60
    )


def test_probe_reports_simulated_gpus_as_json_and_table() -> None:
    result = run_probe("--simulate-gpus", "2", "--min-free-mb", "30000")
    assert result.returncode == 0, result.stderr
    text, _, table = result.stdout.partition("\n\n")
    report = json.loads(text)
    assert report["simulated"] and report["gpu_count"] == 2
    h100, rtx = report["gpus"]
    assert h100["reading"]["fan_pct"] is None and h100["xid_events_supported"] is True
    assert h100["health"] == {"status": "healthy", "reasons": []}
    assert rtx["health"]["status"] == "unhealthy"  # a 24 GB card cannot offer 30000 MiB
    assert "fan_pct" in table and "N/A" in table
    assert "gpu 1: free memory 24152 MiB < required 30000 MiB" in table


def test_probe_without_nvml_exits_2_with_a_clear_message(no_nvidia_driver: None) -> None:
    result = run_probe()  # this test machine has no NVIDIA driver
    assert result.returncode == 2
    assert "NVML is not available" in result.stderr
    assert "--simulate-gpus" in result.stderr
    assert result.stdout == ""
