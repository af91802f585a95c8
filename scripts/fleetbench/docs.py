"""The benchmarks' sections of docs/BENCHMARKS.md and the command lines quoted in them."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from fleetbench.paths import BENCHMARKS_DOC, ROOT


def command_line(argv: Sequence[str], script_path: Path) -> str:
    """How to rerun ``script_path`` with ``argv``, from the checkout, as the docs quote it."""
    script = script_path.resolve().relative_to(ROOT)
    return shlex.join([".venv/bin/python", str(script), *argv])


def write_doc(section: str, heading: str, doc: Path = BENCHMARKS_DOC) -> None:
    """Replace (or add) the section under ``heading`` of docs/BENCHMARKS.md, keeping the others."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        rest = "\n".join(lines[end:])
        new = "\n".join(lines[:start]) + "\n" + section.rstrip("\n") + "\n"
        if rest:
            new += "\n" + rest.rstrip("\n") + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new.lstrip("\n"), encoding="utf-8")
