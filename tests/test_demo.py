"""``fleetq demo --headless``: the whole fleet, as a newcomer runs it, with its summary."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import psutil
import pytest

pytestmark = pytest.mark.slow


def test_headless_demo_does_its_work() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fleetq.cli.main", "demo", "--headless", "--duration", "20",
         "--machines", "2", "--gpus", "2"],
        capture_output=True, text=True, timeout=180, env={**os.environ, "FLEETQ_DEBUG": "0"},
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "verdict: the fleet did its work" in out
    completed = int(re.search(r"completed (\d+)", out).group(1))  # type: ignore[union-attr]
    assert completed >= 10
    shares = re.findall(r"^  (demo-[\w-]+:\d)\s+([\d.]+)%", out, re.MULTILINE)
    assert len(shares) == 2 * 2 + 2  # every simulated GPU of both machines and the A1111 machine
    assert "(fault injected)" in out  # the GPU fault partway through is reported
    assert re.search(r"short\s+p50\s+\d+\s+p95\s+\d+", out)
    # Nothing the demo started is left running.
    leftovers = [
        p.info["cmdline"]
        for p in psutil.process_iter(["cmdline"])
        if any("demo-gpu" in part or "fake-comfyui" in part for part in p.info["cmdline"] or [])
    ]
    assert leftovers == []
