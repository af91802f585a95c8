"""Loads ``scripts/chaos.py`` (a script, not a package) as a module for the chaos tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "chaos.py"
MODULE = "fleetq_chaos_script"
# The chaos helpers (fault_proxy, key_audit) sit next to this file; --import-mode=importlib
# does not put test folders on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def load_chaos() -> ModuleType:
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    spec = importlib.util.spec_from_file_location(MODULE, SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def chaos() -> ModuleType:
    return load_chaos()
