"""The queue benchmark runs end to end on fleetq alone, without arq, rq, saq or bullmq."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetq.demo.embedded import INSTALL_HINT, redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "bench_queue.py"
COMPETITORS = ("arq", "rq", "saq", "bullmq")


@pytest.fixture
def without_competitors(tmp_path: Path) -> dict[str, str]:
    """An environment in which importing any competitor fails, installed or not."""
    for name in COMPETITORS:
        (tmp_path / f"{name}.py").write_text(
            f"raise ImportError('the fleetq-only benchmark must not import {name}')\n"
        )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    return env


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_bench_queue_quick_fleetq_only(without_competitors: dict[str, str]) -> None:
    if redis_server_binary() is None:
        if os.environ.get("FLEETQ_REQUIRE_REDIS") == "1":
            pytest.fail(f"FLEETQ_REQUIRE_REDIS=1 but no Redis server: {INSTALL_HINT}")
        pytest.skip(f"no Redis server: {INSTALL_HINT}")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--fleetq-only"],
        cwd=ROOT,
        env=without_competitors,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.startswith("## Queue core (scripts/bench_queue.py)")
    number = r"[\d,.]+"
    assert re.search(
        rf"^\| fleetq \| .+ \| {number} \| {number} \| {number} \| {number} \|$", out, re.MULTILINE
    ), out
    for heading in ("### Submit-to-claim latency", "### No-op throughput", "### Targets"):
        assert heading in out
    assert "| `stats()` |" in out
    assert not re.search(rf"^\| ({'|'.join(COMPETITORS)}) ", out, re.MULTILINE)
