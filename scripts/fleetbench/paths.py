"""Where the checkout is, for child processes started from it and the docs the scripts update."""

from __future__ import annotations

from pathlib import Path

#: The repository root (the parent of ``scripts/``).
ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
BENCHMARKS_DOC = ROOT / "docs" / "BENCHMARKS.md"
