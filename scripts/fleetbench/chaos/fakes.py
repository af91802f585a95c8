"""Fake ComfyUI instances that log every prompt they execute to a file that outlives them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from supervisor.sim.comfyui.options import ComfyUIOptions
from supervisor.sim.comfyui.prompt_queue import PromptQueue, QueueItem
from supervisor.sim.comfyui.server import FakeComfyUI
from supervisor.sim.group import start_group

# -- the fake ComfyUI machines, with an execution log that survives restarts -----------------


def tag_of(prompt: Any) -> int | None:
    """The chaos tag (FakeWork seed) of a prompt graph."""
    try:
        return int(prompt["2"]["inputs"]["seed"])
    except (KeyError, TypeError, ValueError):
        return None


class ExecutionLog:
    """Appends one JSON line per event to a file shared by the instances of one process."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def write(self, **record: Any) -> None:
        record["t"] = int(time.time() * 1000)
        self.file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.file.close()


def _history_outcome(entry: Mapping[str, Any]) -> tuple[str, list[str]]:
    status = entry.get("status") or {}
    kinds = [m[0] for m in status.get("messages", []) if isinstance(m, list) and m]
    outcome = "success" if status.get("status_str") == "success" else "error"
    if "execution_interrupted" in kinds:
        outcome = "interrupted"
    files = []
    for output in (entry.get("outputs") or {}).values():
        for image in output.get("images", []) if isinstance(output, Mapping) else []:
            files.append(str(image.get("filename")))
    return outcome, files


class RecordingQueue(PromptQueue):
    """ComfyUI's prompt queue, logging each prompt's start and end (with the files it made)."""

    def __init__(
        self, on_change: Callable[[], None], max_history: int, port: int, log: ExecutionLog
    ) -> None:
        super().__init__(on_change, max_history)
        self.port = port
        self.log = log
        self.items: dict[int, QueueItem] = {}

    async def get(self) -> tuple[QueueItem, int]:
        item, task_id = await super().get()
        self.items[task_id] = item
        self.log.write(e="start", port=self.port, prompt=item[1], tag=tag_of(item[2]))
        return item, task_id

    def task_done(self, task_id: int, entry: dict[str, Any]) -> None:
        item = self.items.pop(task_id, None)
        super().task_done(task_id, entry)
        if item is not None:
            outcome, files = _history_outcome(entry)
            self.log.write(
                e="done",
                port=self.port,
                prompt=item[1],
                tag=tag_of(item[2]),
                outcome=outcome,
                files=files,
            )

    def reset(self) -> None:
        dropped = [[item[1], tag_of(item[2])] for item in (*self.items.values(), *self.pending())]
        self.items.clear()
        super().reset()
        self.log.write(e="restart", port=self.port, dropped=dropped)


class RecordingComfyUI(FakeComfyUI):
    def __init__(self, port: int, index: int, log: ExecutionLog) -> None:
        super().__init__("127.0.0.1", port, ComfyUIOptions(), index=index)
        self.queue = RecordingQueue(self._queue_changed, self.options.max_history, port, log)


def serve_fakes(port: int, count: int, log_path: Path) -> None:
    """Blocking (the ``serve-fakes`` sub-command): ``count`` recording fakes until SIGTERM."""
    from supervisor.sim.group import run_until_signalled

    log = ExecutionLog(log_path)
    try:
        run_until_signalled(
            lambda: start_group(lambda i, p: RecordingComfyUI(p, i, log), port, count)
        )
    finally:
        log.close()
