"""The scheduling benchmark of the fleet simulation runs end to end, in its quick form."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetq import Settings
from fleetq.demo.embedded import INSTALL_HINT, redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "bench_fleet_sim.py"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_fleet_sim_scheduling_quick() -> None:
    policies = {"affinity", "fair_share"}
    if not policies <= {f.name for f in dataclasses.fields(Settings)}:
        pytest.skip("the scheduling policies (affinity, fair share) are not in this checkout")
    if redis_server_binary() is None:
        if os.environ.get("FLEETQ_REQUIRE_REDIS") == "1":
            pytest.fail(f"FLEETQ_REQUIRE_REDIS=1 but no Redis server: {INSTALL_HINT}")
        pytest.skip(f"no Redis server: {INSTALL_HINT}")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--scheduling", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.startswith("## Fleet simulation: scheduling (scripts/bench_fleet_sim.py")
    for policy, trace in (("fifo", "flood"), ("affinity+fair", "flood"),
                          ("affinity+fair", "no flood")):  # fmt: skip
        assert re.search(rf"^\| {re.escape(policy)} \| {trace} \| \d+ \| \d+ \|", out, re.M), out
    assert "### Targets" in out and "### ETA error" in out
    # Every run's loads, as counted from the histories, agree with the fakes' own counters.
    assert "the fakes' own load counters agree." in out, out
