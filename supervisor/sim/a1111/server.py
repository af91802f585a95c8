"""``FakeA1111``: one fake AUTOMATIC1111 (or Forge) instance and its fault hooks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

from supervisor.sim.a1111.errors import api_middleware
from supervisor.sim.a1111.generate import Model
from supervisor.sim.a1111.options import RUNTIME_FIELDS, A1111Options
from supervisor.sim.a1111.routes import add_api_routes
from supervisor.sim.a1111.state import SharedState, TaskRegistry
from supervisor.sim.base import FakeServer
from supervisor.sim.hooks import add_hook_routes
from supervisor.sim.listener import StartupMode

log = logging.getLogger(__name__)


class FakeA1111(FakeServer):
    """A real aiohttp server speaking A1111's ``/sdapi/v1`` API (1.10, or Forge's errors).

    In-process hooks (also over HTTP under ``/fake/*``): ``configure(**changes)``,
    ``await restart()``, ``state()``, and ``await wait_until(predicate)`` to wait for a
    generation state (e.g. ``lambda s: s.sampling_step >= 2``) without sleeping.
    """

    kind = "a1111"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        options: A1111Options | None = None,
        *,
        index: int = 0,
    ) -> None:
        super().__init__(host, port, index)
        self._options = options or A1111Options()
        self.shared_state = SharedState()
        """A1111's ``shared.state``: what ``/sdapi/v1/progress`` reports."""
        self.tasks = TaskRegistry()
        self.lock = asyncio.Lock()
        """The queue lock; ``asyncio.Lock`` serves waiters first come, first served."""
        self.model = self._options.models[0]
        """The selected checkpoint (``opts.sd_model_checkpoint``)."""
        self.loaded: str | None = None
        """The checkpoint in memory: None until the first job or switch loads one."""
        self.model_loads = 0
        self._settings: dict[str, Any] = {}
        self._inflight: dict[asyncio.Task[Any], web.Request] = {}
        self.restarts = 0

    # -- public API ---------------------------------------------------------------------------

    @property
    def options(self) -> A1111Options:
        return self._options

    @property
    def waiting(self) -> int:
        """Generation requests waiting for the lock."""
        return max(0, len(self._inflight) - int(self.lock.locked()))

    def configure(self, **changes: Any) -> A1111Options:
        """Change run-time options (see ``options.RUNTIME_FIELDS``); returns the new options."""
        unknown = set(changes) - RUNTIME_FIELDS
        if unknown:
            raise ValueError(f"not a run-time option: {', '.join(sorted(unknown))}")
        self._options = self._options.replace(**changes)
        if self.model not in self._options.models:
            self.model = self._options.models[0]
        if self.loaded not in self._options.models:
            self.loaded = None
        log.info("a1111:%d configured %s", self.port, changes)
        return self._options

    async def restart(self, delay_s: float | None = None) -> None:
        """Play a process restart: open generation requests are cut off (connection reset),
        progress, tasks, options and the loaded model reset, the port closed for ``delay_s``
        (default ``options.startup_delay_s``) in ``options.startup_mode``."""
        if not self.running:
            return
        self.restarts += 1
        log.info("a1111:%d restarting (restart #%d)", self.port, self.restarts)
        inflight = list(self._inflight.items())
        self._inflight.clear()
        for task, request in inflight:
            if request.transport is not None:
                request.transport.abort()
            task.cancel()
        self.shared_state = SharedState()
        self.tasks = TaskRegistry()
        self.lock = asyncio.Lock()
        self.model = self._options.models[0]
        self.loaded = None
        self._settings = {}
        delay = self._options.startup_delay_s if delay_s is None else delay_s
        await self._bounce_listener(delay, self._options.startup_mode)

    async def wait_until(
        self, predicate: Callable[[SharedState], bool], timeout_s: float | None = 10.0
    ) -> None:
        """Wait until ``predicate(shared_state)`` holds, re-checked at every state change."""
        await self.shared_state.wait_for(predicate, timeout_s)

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot for tests and ``GET /fake/state``."""
        return {
            "kind": self.kind,
            "index": self.index,
            "port": self.port,
            "ready": self.ready,
            "busy": self.lock.locked(),
            "waiting": self.waiting,
            "shared_state": self.shared_state.to_dict(),
            "time_start": self.shared_state.time_start,
            "current_task": self.tasks.current,
            "pending_tasks": list(self.tasks.pending),
            "finished_tasks": list(self.tasks.finished),
            "model": self.model,
            "loaded_model": self.loaded,
            "model_loads": self.model_loads,
            "restarts": self.restarts,
            "options": dataclasses.asdict(self._options),
        }

    # -- used by the routes -------------------------------------------------------------------

    @contextlib.contextmanager
    def track_request(self, request: web.Request) -> Iterator[None]:
        """Remember an open generation request so a restart can cut it off."""
        task = asyncio.current_task()
        assert task is not None
        self._inflight[task] = request
        self.shared_state.touch()  # lets ``wait_until`` see the new waiter
        try:
            yield
        finally:
            self._inflight.pop(task, None)
            self.shared_state.touch()

    def settings(self) -> dict[str, Any]:
        """``GET /sdapi/v1/options`` (a small subset of A1111's hundreds of options)."""
        return {
            "samples_save": True,
            "samples_format": "png",
            "save_images_add_number": True,
            "grid_save": True,
            "return_grid": True,
            "grid_only_if_multiple": True,
            "enable_pnginfo": True,
            "live_previews_enable": True,
            "show_progress_every_n_steps": 10,
            "CLIP_stop_at_last_layers": 1,
            "img2img_fix_steps": False,
            "sd_vae": "Automatic",
            "api_enable_requests": True,
            **self._settings,
            "sd_model_checkpoint": self.model,
            "sd_checkpoint_hash": hashlib.sha256(self.model.encode()).hexdigest(),
        }

    async def set_settings(self, changes: dict[str, Any]) -> None:
        """``POST /sdapi/v1/options``: a checkpoint switch waits for the lock, like A1111's
        model reload; an unknown checkpoint is a ``RuntimeError`` (500)."""
        wanted = changes.get("sd_model_checkpoint")
        title = None
        if wanted is not None:
            title = self._find_model(str(wanted))
            if title is None:
                raise RuntimeError(f"model {wanted!r} not found")
        self._settings.update(
            {key: value for key, value in changes.items() if key != "sd_model_checkpoint"}
        )
        if title is not None and title != self.model:
            async with self.lock:
                await self._load(title)
                self.model = title

    async def prepare_job(
        self, overrides: Any, restore_afterwards: bool = True
    ) -> tuple[str, dict[str, Any]]:
        """The start of ``process_images`` (lock held, ``job_count`` -1): the checkpoint a job
        runs on and the settings in force. An ``override_settings.sd_model_checkpoint`` that
        names no checkpoint is dropped silently, as A1111 and Forge do; loading another
        checkpoint takes ``model_load_s``. The checkpoint stays loaded after the job; without
        ``override_settings_restore_afterwards`` it also stays selected."""
        overrides = dict(overrides) if isinstance(overrides, dict) else {}
        wanted = overrides.pop("sd_model_checkpoint", None)
        title = self._find_model(str(wanted)) if wanted is not None else None
        if wanted is not None and title is None:
            log.info("a1111:%d unknown checkpoint %r ignored", self.port, wanted)
        if title is not None and not restore_afterwards:
            self.model = title
        title = title or self.model
        await self._load(title)
        return title, {**self.settings(), **overrides}

    async def _load(self, title: str) -> None:
        if title == self.loaded:
            return
        log.info("a1111:%d loading checkpoint %s", self.port, title)
        self.loaded = None
        await asyncio.sleep(self._options.model_load_s)
        self.loaded = title
        self.model_loads += 1
        self.shared_state.touch()

    def _find_model(self, name: str) -> str | None:
        """``sd_models.checkpoint_aliases``: title, file name, model name or hash."""
        for title in self._options.models:
            filename = title.split(" [")[0]
            model = Model(title)
            if name in (title, filename, filename.rsplit(".", 1)[0], model.name, model.hash):
                return title
        return None

    # -- lifecycle ----------------------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        app.middlewares.append(api_middleware(lambda: self._options.error_shape, lambda: self.port))
        add_api_routes(app, self)
        add_hook_routes(app, self)

    def _startup(self) -> tuple[float, StartupMode]:
        return self._options.startup_delay_s, self._options.startup_mode

    async def _on_stop(self) -> None:
        for task, request in list(self._inflight.items()):
            if request.transport is not None:
                request.transport.abort()
            task.cancel()
        self._inflight.clear()
