"""Fixtures for the core protocol tests."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fleetq import Settings
from fleetq.worker import WorkerQueue

# The key audit and the reply-dropping proxy live with the chaos run, which uses them too
# (--import-mode=importlib does not put test folders on sys.path; the module names are unique).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))


def comfy_graph(seed: int = 0) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "color": seed}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}},
    }


@pytest.fixture
def graph() -> dict[str, Any]:
    return comfy_graph()


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[WorkerQueue]:
    queue = WorkerQueue(settings)
    yield queue
    await queue.aclose()
