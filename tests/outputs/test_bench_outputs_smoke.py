"""scripts/bench_outputs.py runs end to end with tiny settings and reports every store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetq.demo.embedded import INSTALL_HINT, redis_server_binary

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_outputs.py"


def test_bench_outputs_quick_reports_every_store() -> None:
    if redis_server_binary() is None:
        if os.environ.get("FLEETQ_REQUIRE_REDIS") == "1":
            pytest.fail(f"FLEETQ_REQUIRE_REDIS=1 but no Redis server: {INSTALL_HINT}")
        pytest.skip(f"no Redis server: {INSTALL_HINT}")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    for store in ("redis", "file (local disk)", "s3 (moto, loopback)"):
        assert any(
            re.match(rf"\| {re.escape(store)} \| 10\.0 MiB \| 2 \| [\d,]+ ms", r) for r in rows
        )
    # Outside Redis, a job's output records stay small whatever the output size (1.5 MiB).
    big = [r for r in rows if r.startswith(("| file", "| s3")) and "| 1.5 MiB |" in r]
    assert len(big) == 2
    for row in big:
        record = row.strip(" |").split(" | ")[-1]
        number, unit = record.split()
        assert unit in ("B", "KiB") and (unit == "B" or float(number) <= 2.0), row
