"""``FakeComfyUI``: one fake ComfyUI instance, its single worker and its fault hooks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from aiohttp import web

from supervisor.sim.base import FakeServer
from supervisor.sim.comfyui.cache import OutputCache
from supervisor.sim.comfyui.executor import Execution, PromptExecutor
from supervisor.sim.comfyui.files import OutputFiles
from supervisor.sim.comfyui.interrupt import InterruptFlag
from supervisor.sim.comfyui.loaders import LOADER_NAMES, load_image_nodes
from supervisor.sim.comfyui.nodes import node_classes
from supervisor.sim.comfyui.options import RUNTIME_FIELDS, ComfyUIOptions
from supervisor.sim.comfyui.prompt_queue import PromptQueue
from supervisor.sim.comfyui.routes import add_api_routes
from supervisor.sim.comfyui.schema import NodeClass
from supervisor.sim.comfyui.sockets import SocketHub
from supervisor.sim.hooks import add_hook_routes
from supervisor.sim.listener import StartupMode

log = logging.getLogger(__name__)


class FakeComfyUI(FakeServer):
    """A real aiohttp server speaking ComfyUI 0.3.64's HTTP and WebSocket API.

    In-process fault hooks (also reachable over HTTP under ``/fake/*``):
    ``configure(**changes)``, ``await restart()``, ``await drop_websockets()``, ``state()``;
    and ``await wait_for_sockets(predicate)`` to wait for clients without sleeping.
    """

    kind = "comfyui"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        options: ComfyUIOptions | None = None,
        *,
        index: int = 0,
    ) -> None:
        super().__init__(host, port, index)
        self._options = options or ComfyUIOptions()
        self._files: OutputFiles | None = None
        self.hub = SocketHub(self.queue_info)
        self.queue = PromptQueue(self._queue_changed, self._options.max_history)
        self.cache = OutputCache()
        self.interrupt = InterruptFlag()
        self.number = 0
        """ComfyUI's ``server.number``: advances on every POST /prompt without ``number``."""
        self.restarts = 0
        self._worker: asyncio.Task[None] | None = None
        self._executor: PromptExecutor | None = None
        self._pending_free: dict[str, bool] = {}
        self._classes: tuple[Hashable, dict[str, NodeClass]] | None = None
        _build_classes(self._options)  # refuse an unknown node class at construction
        self.loaded_model: str | None = None
        """The checkpoint (or diffusion model) in memory; None after start, a restart or
        ``/free`` with ``unload_models``."""
        self.model_loads = 0
        """Model loads since start: each one took ``model_load_s``."""

    # -- public API ---------------------------------------------------------------------------

    @property
    def options(self) -> ComfyUIOptions:
        return self._options

    @property
    def files(self) -> OutputFiles:
        """The output/input/temp folders (created on start)."""
        if self._files is None:
            raise RuntimeError("fake ComfyUI is not started")
        return self._files

    def ws_url(self, client_id: str | None = None, prefix: str = "") -> str:
        """``ws://host:port[/api]/ws[?clientId=...]``"""
        base = self.url.replace("http://", "ws://", 1) + f"{prefix}/ws"
        return f"{base}?clientId={client_id}" if client_id else base

    def classes(self) -> Mapping[str, NodeClass]:
        """The node classes, rebuilt when the model lists or the node set change."""
        options = self._options
        key = _classes_key(options)
        if self._classes is None or self._classes[0] != key:
            self._classes = (key, _build_classes(options))
        classes = self._classes[1]
        if self._files is None:
            return classes
        # The loaders list the input folder as it is now, as ComfyUI's INPUT_TYPES does.
        loaders = load_image_nodes(self._files.base)
        return {**classes, **{name: loaders[name] for name in LOADER_NAMES if name in classes}}

    def configure(self, **changes: Any) -> ComfyUIOptions:
        """Change run-time options (see ``options.RUNTIME_FIELDS``); returns the new options."""
        unknown = set(changes) - RUNTIME_FIELDS
        if unknown:
            raise ValueError(f"not a run-time option: {', '.join(sorted(unknown))}")
        options = self._options.replace(**changes)
        _build_classes(options)  # refuse an unknown node class before anything changes
        self._options = options
        self.queue.max_history = self._options.max_history
        log.info("comfyui:%d configured %s", self.port, changes)
        return self._options

    async def restart(self, delay_s: float | None = None) -> None:
        """Play a process restart: sockets dropped, running prompt lost without history,
        queue, history, cache and the ``number`` counter reset, the port closed for
        ``delay_s`` (default ``options.startup_delay_s``) in ``options.startup_mode``."""
        if not self.running:
            return
        self.restarts += 1
        log.info("comfyui:%d restarting (restart #%d)", self.port, self.restarts)
        await self._stop_worker()
        self.hub.clear_outbox()
        await self.hub.drop_all()
        self.hub.owner_sid = None
        self.hub.last_node_id = None
        self.queue.reset()
        self.cache.clear()
        self.interrupt.clear()
        self.number = 0
        self.loaded_model = None
        self._pending_free.clear()
        self.files.wipe_temp()
        delay = self._options.startup_delay_s if delay_s is None else delay_s
        await self._bounce_listener(delay, self._options.startup_mode)
        if self.running:
            self._start_worker()

    async def drop_websockets(self, abrupt: bool = False) -> int:
        """Close every WebSocket (``abrupt``: cut TCP without a close frame); returns how many."""
        count = await self.hub.drop_all(abrupt)
        log.info("comfyui:%d dropped %d websocket(s)", self.port, count)
        return count

    async def wait_for_sockets(
        self, predicate: Callable[[list[str]], bool], timeout_s: float | None = 10.0
    ) -> None:
        """Wait until ``predicate(connected client ids)`` holds, e.g. until a client connected
        (``lambda sids: "worker-1" in sids``) or every socket is gone (``not sids``)."""
        await self.hub.wait_for(predicate, timeout_s)

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot for tests and ``GET /fake/state``."""
        return {
            "kind": self.kind,
            "index": self.index,
            "port": self.port,
            "ready": self.ready,
            "number": self.number,
            "running": [item[1] for item in self.queue.running()],
            "pending": [item[1] for item in self.queue.pending_in_order()],
            "history": list(self.queue.history),
            "sockets": self.hub.sids,
            "owner_sid": self.hub.owner_sid,
            "interrupt_requested": self.interrupt.requested,
            "cache_entries": len(self.cache),
            "restarts": self.restarts,
            "loaded_model": self.loaded_model,
            "model_loads": self.model_loads,
            "options": dataclasses.asdict(self._options),
        }

    # -- used by the routes -------------------------------------------------------------------

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        """``POST /free``: applied after the running prompt, or now when idle."""
        if unload_models:
            self._pending_free["unload_models"] = True
        if free_memory:
            self._pending_free["free_memory"] = True
        if not self.queue.running():
            self._apply_free()

    # -- lifecycle ----------------------------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        add_api_routes(app, self)
        add_hook_routes(app, self, sockets=self)

    def _startup(self) -> tuple[float, StartupMode]:
        return self._options.startup_delay_s, self._options.startup_mode

    async def _on_start(self) -> None:
        self._files = OutputFiles(self._options.base_dir)
        self._files.wipe_temp()
        self._executor = PromptExecutor(
            hub=self.hub,
            cache=self.cache,
            files=self._files,
            interrupt=self.interrupt,
            classes=self.classes,
            caching=lambda: self._options.caching,
            sampler_step_s=lambda: self._options.sampler_step_s,
            preview_method=lambda: self._options.preview_method,
            load_model=self._load_model,
        )
        self.hub.start()
        self._start_worker()

    async def _on_stop(self) -> None:
        await self._stop_worker()
        await self.hub.stop()
        if self._files is not None:
            self._files.cleanup()

    def _start_worker(self) -> None:
        self._worker = asyncio.create_task(self._work(), name=f"fake-comfyui-{self.port}")

    async def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    def _queue_changed(self) -> None:
        self.hub.send("status", {"status": self.queue_info()})

    async def _work(self) -> None:
        """``main.py prompt_worker``: one prompt at a time, history before the final message."""
        loop = asyncio.get_running_loop()
        executor = self._executor
        assert executor is not None
        while True:
            item, task_id = await self.queue.get()
            prompt_id = item[1]
            started = loop.time()
            log.info("comfyui:%d prompt %s running (number %s)", self.port, prompt_id, item[0])
            try:
                execution = await executor.execute(item)
            except Exception:
                log.exception(
                    "comfyui:%d prompt %s crashed the fake executor", self.port, prompt_id
                )
                client_id = item[3].get("client_id") if isinstance(item[3], dict) else None
                execution = Execution(prompt_id, client_id, outcome="error")
            if self._options.history_delay_s > 0:
                await asyncio.sleep(self._options.history_delay_s)
            self.queue.task_done(task_id, execution.history_entry())
            if execution.client_id is not None:
                done = {"node": None, "prompt_id": prompt_id}
                self.hub.send("executing", done, execution.client_id)
            log.info(
                "comfyui:%d prompt %s %s%s in %.3f s",
                self.port,
                prompt_id,
                execution.outcome,
                f" at node {execution.node_id}" if execution.node_id else "",
                loop.time() - started,
            )
            self._apply_free()

    def _apply_free(self) -> None:
        if self._pending_free.pop("free_memory", False):
            self.cache.clear()
        if self._pending_free.pop("unload_models", False):
            self.loaded_model = None

    async def _load_model(self, name: str) -> None:
        """A loader node asks for ``name``: free if it is loaded, else ``model_load_s``."""
        if name == self.loaded_model:
            return
        log.info("comfyui:%d loading model %s", self.port, name)
        await asyncio.sleep(self._options.model_load_s)
        self.loaded_model = name
        self.model_loads += 1


def _classes_key(options: ComfyUIOptions) -> Hashable:
    models = tuple(sorted(options.models.items()))
    return options.checkpoints, models, options.nodes, options.custom_nodes


def _build_classes(options: ComfyUIOptions) -> dict[str, NodeClass]:
    models = {**options.models, "checkpoints": options.files("checkpoints")}
    return node_classes(models=models, nodes=options.nodes, custom_nodes=options.custom_nodes)
