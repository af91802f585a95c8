"""Fixtures for the core protocol tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from fleetq import Settings
from fleetq.worker import WorkerQueue


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
