"""The gateway is part of the core: it loads neither the supervisor, the dashboard nor NVML, and
registering its sub-command loads nothing heavy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    code = f"import sys; {statement}; print(','.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [m for m in out.stdout.strip().split(",") if m]


def test_the_gateway_loads_no_supervisor_dashboard_or_nvml() -> None:
    banned = ("supervisor", "tui", "textual", "pynvml")
    assert loaded_after("import fleetq.gateway.main, fleetq.metrics", banned) == []


def test_registering_the_sub_command_loads_no_server() -> None:
    heavy = ("aiohttp", "prometheus_client", "fleetq.gateway.app")
    assert loaded_after("import fleetq.gateway.cli", heavy) == []
