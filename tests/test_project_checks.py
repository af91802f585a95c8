"""What CI runs is what the README promises: scripts/check holds the README's test command, and
.ci/run runs scripts/check against Debian's redis-server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The ``sh`` blocks of the README's quick start, one command each."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", quick_start, re.DOTALL)]


def test_scripts_check_runs_the_readme_test_command() -> None:
    test_command = next(c for c in readme_commands() if "scripts/test" in c)
    check = (ROOT / "scripts" / "check").read_text(encoding="utf-8")
    assert test_command + ' "$@"' in check.splitlines()
    checkers = ("ruff format --check", "ruff check", "mypy", "lint-imports", "unasync.py --check")
    for checker in checkers:
        assert checker in check


def test_ci_runs_scripts_check_with_debian_redis() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "set -euo pipefail" in lines
    assert "$SUDO apt-get install -y redis-server" in lines
    assert "export FLEETQ_REQUIRE_REDIS=1" in lines
    assert lines[-1] == "bash scripts/check"


def test_the_long_fuzz_runs_carry_the_fuzz_marker() -> None:
    def collected(*args: str) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
             *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        return {line for line in done.stdout.splitlines() if "::" in line}

    fuzz = collected("-m", "fuzz", "tests/fuzz", "tests/gateway/test_fuzz.py")
    assert "tests/fuzz/test_submit_fuzz.py::test_any_submit_is_a_job_or_a_validation_error" in fuzz
    assert any(t.startswith("tests/gateway/test_fuzz.py::") for t in fuzz)
    quick = collected("-m", "not fuzz", "tests/fuzz")
    assert quick and not quick & fuzz  # the examples that are not hypothesis runs stay
