"""A1111's global generation state (``shared.state``) and its task bookkeeping
(``modules/progress.py``), with the exact progress formulas of both progress endpoints."""

from __future__ import annotations

import asyncio
import base64
import datetime
import time
from collections.abc import Callable
from typing import Any

from supervisor.sim.png import encode_solid_png

#: A sampler's latent as the fake keeps it: width, height and colour of its solid image.
Latent = tuple[int, int, tuple[int, int, int]]

FINISHED_TASKS_KEPT = 16


class SharedState:
    """What ``GET /sdapi/v1/progress`` reports: the one job holding the lock, whoever sent it.

    ``end()`` resets only ``job`` and ``job_count``, as in A1111: the step counters of the
    last job stay visible while idle.
    """

    def __init__(self) -> None:
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.job = ""
        self.job_count = 0
        self.job_no = 0
        self.job_timestamp = "0"
        self.sampling_step = 0
        self.sampling_steps = 0
        self.time_start: float | None = None
        self.textinfo: str | None = None
        self.current_latent: Latent | None = None
        self.current_image: bytes | None = None
        self.current_image_sampling_step = 0
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()

    # -- transitions ---------------------------------------------------------------------------

    def begin(self, job: str) -> None:
        """A job takes the lock; clears interrupt and skip (so an idle interrupt is lost)."""
        self.sampling_step = 0
        self.time_start = time.time()
        self.job_count = -1
        self.job_no = 0
        self.job_timestamp = datetime.datetime.now().strftime("%Y%m%d%H%M%S")
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.textinfo = None
        self.current_latent = None
        self.current_image = None
        self.current_image_sampling_step = 0
        self.job = job
        self._stop.clear()
        self.touch()

    def end(self) -> None:
        self.job = ""
        self.job_count = 0
        self.touch()

    def nextjob(self) -> None:
        self.job_no += 1
        self.sampling_step = 0
        self.touch()

    def interrupt(self) -> None:
        self.interrupted = True
        self._stop.set()
        self.touch()

    def skip(self) -> None:
        self.skipped = True
        self._stop.set()
        self.touch()

    def consume_skip(self) -> None:
        """At the start of each batch a pending skip is spent."""
        if self.skipped:
            self.skipped = False
            if not self.interrupted:
                self._stop.clear()
            self.touch()

    def update(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self, name, value)
        self.touch()

    def touch(self) -> None:
        """Wake everyone waiting in ``wait_for``."""
        self._changed.set()
        self._changed = asyncio.Event()

    # -- waiting -------------------------------------------------------------------------------

    async def sleep_unless_stopped(self, seconds: float | None) -> bool:
        """Sleep ``seconds`` (forever for None); return True early on interrupt or skip."""
        if self._stop.is_set():
            return True
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def wait_for(
        self, predicate: Callable[[SharedState], bool], timeout_s: float | None = 10.0
    ) -> None:
        """Wait until ``predicate(state)`` holds (checked at every state change)."""

        async def _wait() -> None:
            while not predicate(self):
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout_s)

    # -- reports -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "interrupted": self.interrupted,
            "stopping_generation": self.stopping_generation,
            "job": self.job,
            "job_count": self.job_count,
            "job_timestamp": self.job_timestamp,
            "job_no": self.job_no,
            "sampling_step": self.sampling_step,
            "sampling_steps": self.sampling_steps,
        }

    def set_current_image(self, settings: dict[str, Any]) -> None:
        """``State.set_current_image``: decode the current latent into the live preview once
        ``show_progress_every_n_steps`` steps passed since the last one, if live previews are
        on (``live_previews_enable``; ``show_progress_every_n_steps`` -1 turns them off)."""
        every = settings.get("show_progress_every_n_steps", 10)
        if not settings.get("live_previews_enable", True) or not isinstance(every, int):
            return
        if every == -1 or self.sampling_step - self.current_image_sampling_step < every:
            return
        if self.current_latent is None:
            return
        width, height, rgb = self.current_latent
        self.current_image = encode_solid_png(width, height, rgb)
        self.current_image_sampling_step = self.sampling_step

    def progress(self, skip_current_image: bool = True) -> dict[str, Any]:
        """``GET /sdapi/v1/progress`` (``api.progressapi``): ``current_image`` is the live
        preview (base64 PNG, ``samples_format``) unless skipped; call
        :meth:`set_current_image` first, as the endpoint does."""
        if self.job_count == 0:
            return {
                "progress": 0.0,
                "eta_relative": 0.0,
                "state": self.to_dict(),
                "current_image": None,
                "textinfo": self.textinfo,
            }
        progress = 0.01
        if self.job_count > 0:
            progress += self.job_no / self.job_count
        if self.sampling_steps > 0:
            progress += 1 / self.job_count * self.sampling_step / self.sampling_steps
        elapsed = time.time() - (self.time_start or time.time())
        eta_relative = elapsed / progress - elapsed
        image = None
        if self.current_image is not None and not skip_current_image:
            image = base64.b64encode(self.current_image).decode("ascii")
        return {
            "progress": min(progress, 1.0),
            "eta_relative": eta_relative,
            "state": self.to_dict(),
            "current_image": image,
            "textinfo": self.textinfo,
        }


class TaskRegistry:
    """``modules/progress.py``: queued task ids, the current one, the last 16 finished."""

    def __init__(self) -> None:
        self.pending: dict[str, float] = {}
        self.current: str | None = None
        self.finished: list[str] = []

    def add(self, task_id: str) -> None:
        self.pending[task_id] = time.time()

    def start(self, task_id: str) -> None:
        self.current = task_id
        self.pending.pop(task_id, None)

    def finish(self, task_id: str) -> None:
        """Called on success only: a failed task stays "active" until the next one starts."""
        if self.current == task_id:
            self.current = None
        self.finished.append(task_id)
        del self.finished[:-FINISHED_TASKS_KEPT]

    def progress(self, task_id: str, id_live_preview: int, state: SharedState) -> dict[str, Any]:
        """``POST /internal/progress`` for one task."""
        active = task_id == self.current
        queued = task_id in self.pending
        completed = task_id in self.finished
        if not active:
            textinfo = "Waiting..."
            if queued:
                order = sorted(self.pending, key=lambda key: self.pending[key])
                textinfo = f"In queue: {order.index(task_id) + 1}/{len(order)}"
            return {
                "active": active,
                "queued": queued,
                "completed": completed,
                "progress": None,
                "eta": None,
                "live_preview": None,
                "id_live_preview": -1,
                "textinfo": textinfo,
            }
        progress = 0.0
        if state.job_count > 0:
            progress += state.job_no / state.job_count
            if state.sampling_steps > 0:
                progress += 1 / state.job_count * state.sampling_step / state.sampling_steps
        progress = min(progress, 1.0)
        elapsed = time.time() - (state.time_start or time.time())
        eta = elapsed / progress - elapsed if progress > 0 else None
        return {
            "active": active,
            "queued": queued,
            "completed": completed,
            "progress": progress,
            "eta": eta,
            "live_preview": None,
            "id_live_preview": id_live_preview,
            "textinfo": state.textinfo,
        }
