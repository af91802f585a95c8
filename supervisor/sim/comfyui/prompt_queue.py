"""ComfyUI's ``PromptQueue``: a heap of pending prompts, the running one, and the history.

Items are the 5-element lists clients see in ``/queue`` and in history:
``[number, prompt_id, prompt, extra_data, outputs_to_execute]``. ``queue_pending`` is the raw
heap (not sorted), exactly as the real server returns it. Every change calls ``on_change``,
which broadcasts a ``status`` message.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QueueItem = list[Any]
"""``[number, prompt_id, prompt, extra_data, outputs_to_execute]``"""


@dataclass(order=True)
class _HeapEntry:
    number: float
    prompt_id: str
    seq: int
    item: QueueItem = field(compare=False)


class PromptQueue:
    """Pending heap keyed by ``(number, prompt_id)``, running items, bounded history."""

    def __init__(self, on_change: Callable[[], None], max_history: int) -> None:
        self._on_change = on_change
        self.max_history = max_history
        self._heap: list[_HeapEntry] = []
        self._seq = itertools.count()
        self._running: dict[int, QueueItem] = {}
        self._task_ids = itertools.count()
        self._not_empty = asyncio.Event()
        self.history: dict[str, dict[str, Any]] = {}

    def put(self, item: QueueItem) -> None:
        heapq.heappush(self._heap, _HeapEntry(item[0], item[1], next(self._seq), item))
        self._not_empty.set()
        self._on_change()

    async def get(self) -> tuple[QueueItem, int]:
        """Wait for the next item; it moves to "running" in the same step (no gap)."""
        while not self._heap:
            self._not_empty.clear()
            await self._not_empty.wait()
        entry = heapq.heappop(self._heap)
        task_id = next(self._task_ids)
        self._running[task_id] = entry.item
        self._on_change()
        return entry.item, task_id

    def task_done(self, task_id: int, entry: dict[str, Any]) -> None:
        """Move a finished item into history (``entry`` without ``prompt``) and report it."""
        item = self._running.pop(task_id)
        if len(self.history) > self.max_history:
            self.history.pop(next(iter(self.history)))
        self.history[item[1]] = {"prompt": item, **entry}
        self._on_change()

    def remaining(self) -> int:
        """``queue_remaining``: pending plus running."""
        return len(self._heap) + len(self._running)

    def running(self) -> list[QueueItem]:
        return list(self._running.values())

    def pending(self) -> list[QueueItem]:
        """The heap list as it is (ComfyUI does not sort it)."""
        return [entry.item for entry in self._heap]

    def pending_in_order(self) -> list[QueueItem]:
        return [entry.item for entry in sorted(self._heap)]

    def delete_pending(self, prompt_id: str) -> bool:
        """Remove one pending item; the running one cannot be deleted."""
        for index, entry in enumerate(self._heap):
            if entry.prompt_id == prompt_id:
                if len(self._heap) == 1:
                    # ComfyUI wipes the queue here, which reports once more.
                    self.wipe()
                else:
                    self._heap.pop(index)
                    heapq.heapify(self._heap)
                self._on_change()
                return True
        return False

    def wipe(self) -> None:
        self._heap.clear()
        self._on_change()

    def get_history(
        self, prompt_id: str | None = None, max_items: int | None = None, offset: int = -1
    ) -> dict[str, Any]:
        """``/history`` (oldest first, ``max_items`` from the end unless ``offset`` is given)
        or ``/history/{id}`` (``{}`` when unknown, pending or running)."""
        if prompt_id is not None:
            return {prompt_id: self.history[prompt_id]} if prompt_id in self.history else {}
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        out: dict[str, Any] = {}
        for index, (key, value) in enumerate(self.history.items()):
            if index >= offset:
                out[key] = value
                if max_items is not None and len(out) >= max_items:
                    break
        return out

    def delete_history(self, prompt_id: str) -> None:
        self.history.pop(prompt_id, None)

    def wipe_history(self) -> None:
        self.history.clear()

    def reset(self) -> None:
        """Forget everything, as a process restart does (no status is sent)."""
        self._heap.clear()
        self._running.clear()
        self.history.clear()
