"""Fixtures for the core protocol tests."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.fixtures import graph, worker  # noqa: F401 (fixtures)

# The key audit and the reply-dropping proxy live with the chaos run, which uses them too
# (--import-mode=importlib does not put test folders on sys.path; the module names are unique).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
