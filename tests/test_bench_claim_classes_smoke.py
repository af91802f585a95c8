"""The requirement-class claim benchmark runs end to end (tiny sizes) and prints its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetq.demo.embedded import redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "bench_claim_classes.py"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_bench_claim_classes_quick() -> None:
    if redis_server_binary() is None:
        pytest.skip("no Redis server")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--queued", "600", "--claims", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.startswith("## Claim with requirement classes (scripts/bench_claim_classes.py)")
    rows = re.findall(r"^\| (\d+) \| [\d,]+ \| (\d+) \| 20 \|", out, re.MULTILINE)
    assert ("1", "1") in rows and ("500", "500") in rows and ("500", "1") in rows
