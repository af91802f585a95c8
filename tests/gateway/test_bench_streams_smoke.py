"""The gateway streams benchmark runs end to end (a few streams, a few requests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleetq.demo.embedded import redis_server_binary

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_bench_gateway_streams_smoke() -> None:
    if redis_server_binary() is None:
        if os.environ.get("FLEETQ_REQUIRE_REDIS") == "1":
            pytest.fail("FLEETQ_REQUIRE_REDIS=1 but redis-server is not installed")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    result = subprocess.run(
        [sys.executable, "scripts/bench_gateway_streams.py", "--streams", "0", "20",
         "--requests", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert out.startswith("## Gateway event streams (scripts/bench_gateway_streams.py)")
    rows = re.findall(r"^\| (\d+) \|.* \| (\d+) \| (\d+) \|$", out, re.MULTILINE)
    # One blocked Redis client (the shared reader) however many streams are open.
    assert [(count, blocked) for count, blocked, _ in rows] == [("0", "1"), ("20", "1")], out
