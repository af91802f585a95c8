"""The dashboard depends on the core and Textual only: never the supervisor, never NVML."""

from __future__ import annotations

import subprocess
import sys


def test_the_dashboard_loads_neither_the_supervisor_nor_nvml() -> None:
    code = (
        "import sys, tui.app, tui.demo, tui.__main__\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('supervisor', 'pynvml'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


def test_main_module_parses_its_options() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tui", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    for option in ("--redis", "--namespace", "--readonly"):
        assert option in out.stdout
