"""Helpers for the adapter tests: workflows for the fakes, a progress recorder, captures."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

CAPTURES = Path(__file__).resolve().parent / "captures"
WAIT_S = 5.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_capture(name: str) -> Any:
    """A ``NAME.json`` capture as a dict, or a ``ws_*.jsonl`` capture as a list of lines."""
    text = (CAPTURES / name).read_text()
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def fake_graph(
    job_id: str,
    seconds: float = 0.0,
    steps: int = 0,
    outcome: str = "ok",
    *,
    seed: int = 0,
    **fake_work: Any,
) -> dict[str, Any]:
    """EmptyImage ("1") -> FakeWork ("2") -> SaveImage ("3") writing ``jobs/<job_id>/img``."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x336699},
        },
        "2": {
            "class_type": "FakeWork",
            "inputs": {
                "image": ["1", 0],
                "seconds": seconds,
                "steps": steps,
                "outcome": outcome,
                "seed": seed,
                **fake_work,
            },
        },
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": f"jobs/{job_id}/img"},
        },
    }


def nondecreasing(values: list[float]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


class ProgressLog:
    """A ``ProgressSink`` that records every call and lets a test await a condition on them."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []
        self._changed = asyncio.Event()

    def __call__(self, fraction: float, text: str) -> None:
        self.calls.append((fraction, text))
        self._changed.set()

    @property
    def fractions(self) -> list[float]:
        return [fraction for fraction, _ in self.calls]

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.calls]

    async def wait_for(
        self, predicate: Callable[[list[tuple[float, str]]], bool], timeout_s: float = WAIT_S
    ) -> None:
        async def _wait() -> None:
            while not predicate(self.calls):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout_s)

    async def wait_text(self, fragment: str, timeout_s: float = WAIT_S) -> None:
        """Until some call's text contains ``fragment``."""
        await self.wait_for(lambda calls: any(fragment in text for _, text in calls), timeout_s)


def backend_tasks() -> list[asyncio.Task[Any]]:
    """Tasks the adapters started (they name theirs comfyui-ws-*, a1111-*) still alive."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith(("comfyui-ws-", "a1111-")) and not task.done()
    ]
