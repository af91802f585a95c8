"""The benchmark of the dashboard's unrunnable marks runs end to end (tiny sizes) and marks
what it should: half the classes, so half the page when the classes divide it evenly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetq.demo.embedded import redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "bench_tui_marks.py"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_tui_marks_quick() -> None:
    if redis_server_binary() is None:
        pytest.skip("no Redis server")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--classes", "1", "4", "--refreshes", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = re.findall(r"^\| (\d+) \| (\d+) of 200 \|", result.stdout, re.MULTILINE)
    assert rows == [("1", "0"), ("4", "100")]
