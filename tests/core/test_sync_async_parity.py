"""The synchronous and asyncio APIs are the same API: the same public methods with the same
parameters, the async ones awaitable. Both are generated from one source (fleetq/_async), and
scripts/unasync.py --check fails when the generated half is stale."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetq import AsyncClient, AsyncJob, Client, Job
from fleetq.store import AsyncStore, SyncStore

ROOT = Path(__file__).resolve().parents[2]

# The methods whose names differ by design: asyncio's context manager and close.
RENAMED = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}


def public_methods(cls: type) -> dict[str, Any]:
    return {
        RENAMED.get(name, name): member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") or name in RENAMED or name in ("__enter__", "__exit__")
    }


def shape(function: Any) -> list[tuple[str, Any, Any, str]]:
    """Each parameter's name, kind, default and annotation, with ``Async`` taken off names."""
    return [
        (p.name, p.kind, p.default, re.sub(r"\b(Async|Sync)(?=[A-Z])", "", str(p.annotation)))
        for p in inspect.signature(function).parameters.values()
    ]


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"),
    [(Client, AsyncClient), (Job, AsyncJob), (SyncStore, AsyncStore)],
    ids=["Client", "Job", "Store"],
)
def test_sync_and_async_classes_offer_the_same_methods(sync_cls: type, async_cls: type) -> None:
    sync_methods = public_methods(sync_cls)
    async_methods = public_methods(async_cls)
    assert sorted(sync_methods) == sorted(async_methods)
    for name, sync_method in sync_methods.items():
        async_method = async_methods[name]
        assert shape(sync_method) == shape(async_method), name
        assert not inspect.iscoroutinefunction(sync_method), name
        awaitable = name not in ("__init__", "__repr__", "from_url", "from_env")
        assert inspect.iscoroutinefunction(async_method) == awaitable, name


def test_the_generated_sync_code_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
