"""The supervisor benchmarks run end to end with tiny settings: the idle overhead of one
supervisor, and the pull-vs-push fleet simulation (real processes, fake ComfyUI)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetq.demo.embedded import INSTALL_HINT, redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
IDLE = ROOT / "scripts" / "bench_supervisor_idle.py"
FLEET = ROOT / "scripts" / "bench_fleet_sim.py"
NUMBER = r"[\d,.]+"


@pytest.fixture(autouse=True)
def _needs_redis_server() -> None:
    if redis_server_binary() is None:
        if os.environ.get("FLEETQ_REQUIRE_REDIS") == "1":
            pytest.fail(f"FLEETQ_REQUIRE_REDIS=1 but no Redis server: {INSTALL_HINT}")
        pytest.skip(f"no Redis server: {INSTALL_HINT}")


def run_script(script: Path, *args: str, timeout_s: float) -> str:
    result = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bench_supervisor_idle_quick() -> None:
    out = run_script(
        IDLE, "--quick", "--gpus", "2", "--warmup", "1", "--window", "7", "--monitor", "1",
        timeout_s=45,
    )  # fmt: skip
    assert out.startswith("## Supervisor idle overhead (scripts/bench_supervisor_idle.py)")
    for measure in ("supervisor CPU", "supervisor RSS", "Redis commands/s per idle GPU"):
        assert re.search(
            rf"^\| {measure}[^|]* \| <= {NUMBER}[^|]* \| {NUMBER}( MB|%)? \| (met|missed) \|$",
            out,
            re.MULTILINE,
        ), out
    # An idle puller claims (EVALSHA), blocks on its marker (BZPOPMIN) and probes its backend.
    assert re.search(rf"^\| `evalsha` \| {NUMBER} \| {NUMBER} \|", out, re.MULTILINE), out
    assert re.search(rf"^\| `bzpopmin` \| {NUMBER} \| {NUMBER} \|", out, re.MULTILINE), out
    assert re.search(rf"^\| `GET /prompt` \| {NUMBER} \| {NUMBER} \|$", out, re.MULTILINE), out


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bench_fleet_sim_quick() -> None:
    out = run_script(
        FLEET, "--quick", "--hosts", "2", "--gpus-per-host", "3", "--burst-per-gpu", "2",
        timeout_s=45,
    )  # fmt: skip
    assert out.startswith("## Fleet simulation: pull vs round-robin push")
    cells = r"( [^|]+ \|){10}"
    for label in ("fleetq pull", "fleetq pull, by its timelines (claim to finish)",
                  "round-robin push"):  # fmt: skip
        assert re.search(rf"^\| burst \| {re.escape(label)} \| 12 \|{cells}$", out, re.MULTILINE), (
            out
        )
    assert re.search(r"^\| fleetq: GPU idle while work waits <= 1% \| burst \| (met|missed) \|",
                     out, re.MULTILINE), out  # fmt: skip
    assert "### Dispatch overhead per job" in out
