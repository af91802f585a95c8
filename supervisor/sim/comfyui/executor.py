"""Execute one prompt and emit ComfyUI's WebSocket messages, in ComfyUI's order.

Per prompt (``execution.py`` ``execute_async``)::

    execution_start, execution_cached{nodes}
    per executed node: progress_state{running} executing{node} [progress_state progress]*
                       [executed{output}] progress_state{finished}
    per cached output node: executed{old output} progress_state{finished}
    execution_success | execution_error | execution_interrupted

Routing: ``execution_*`` (except interrupted), ``executing`` and ``executed`` go to the
owner's socket only and nowhere without ``client_id``; ``progress``, ``progress_state``,
previews and ``execution_interrupted`` go to the owner, or to every socket when the prompt has
no ``client_id``. The caller (the worker) then writes history, sends ``status`` and
``executing{node:null}``.
"""

from __future__ import annotations

import json
import struct
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from supervisor.sim.comfyui.cache import CacheEntry, OutputCache, is_link, node_signatures
from supervisor.sim.comfyui.files import OutputFiles
from supervisor.sim.comfyui.graph import execution_order
from supervisor.sim.comfyui.interrupt import InterruptFlag
from supervisor.sim.comfyui.options import PREVIEW_METHODS
from supervisor.sim.comfyui.prompt_queue import QueueItem
from supervisor.sim.comfyui.schema import (
    FakeImage,
    InterruptProcessingError,
    NodeCall,
    NodeClass,
)
from supervisor.sim.comfyui.sockets import (
    PREVIEW_IMAGE,
    PREVIEW_IMAGE_WITH_METADATA,
    SocketHub,
)
from supervisor.sim.comfyui.validation import full_type_name
from supervisor.sim.png import encode_solid_png, rgb_from_int

PREVIEW_SIZE = 512
PNG_FORMAT = 2


def _now_ms() -> int:
    return int(time.time() * 1000)


def _format_value(value: Any) -> Any:
    """How ``execution_error.current_inputs`` shows a value (``format_value``)."""
    if value is None or isinstance(value, (int, float, bool, str, dict)):
        return value
    return str(value)


@dataclass
class Execution:
    """What one prompt produced; ``history_entry()`` is its ``/history`` record."""

    prompt_id: str
    client_id: str | None
    outcome: str = "success"
    """``success``, ``error`` or ``interrupted``."""
    messages: list[list[Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    node_id: str | None = None
    """The node that failed or was interrupted."""

    @property
    def success(self) -> bool:
        return self.outcome == "success"

    def history_entry(self) -> dict[str, Any]:
        status = {
            "status_str": "success" if self.success else "error",
            "completed": self.success,
            "messages": self.messages,
        }
        return {"outputs": self.outputs, "status": status, "meta": self.meta}


class _ProgressState:
    """``comfy_execution/progress.py``: per-node value/max/state, sent whole each time."""

    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self.nodes: dict[str, dict[str, Any]] = {}

    def start(self, node_id: str) -> None:
        self.nodes[node_id] = {"state": "running", "value": 0.0, "max": 1.0}

    def update(self, node_id: str, value: float, total: float) -> None:
        entry = self.nodes.setdefault(node_id, {"state": "running", "value": 0, "max": 1})
        entry.update(state="running", value=value, max=total)

    def finish(self, node_id: str) -> None:
        # A cached node never started: its entry is created here with ints (value 1, max 1).
        entry = self.nodes.setdefault(node_id, {"state": "pending", "value": 0, "max": 1})
        entry.update(state="finished", value=entry["max"])

    def message(self) -> dict[str, Any]:
        nodes = {
            node_id: {
                "value": entry["value"],
                "max": entry["max"],
                "state": entry["state"],
                "node_id": node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, entry in self.nodes.items()
            if entry["state"] != "pending"
        }
        return {"prompt_id": self.prompt_id, "nodes": nodes}


class _PromptRun:
    """One prompt's execution; also the ``NodeRuntime`` its nodes see."""

    def __init__(self, executor: PromptExecutor, item: QueueItem) -> None:
        self.x = executor
        self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs = item
        client_id = self.extra_data.get("client_id")
        self.client_id: str | None = client_id if isinstance(client_id, str) else None
        self.result = Execution(self.prompt_id, self.client_id)
        self.progress_state = _ProgressState(self.prompt_id)
        self.node_id = ""
        self.values: dict[str, tuple[Any, ...]] = {}
        self.executed: list[str] = []
        self.signatures = node_signatures(self.prompt)

    # -- NodeRuntime -------------------------------------------------------------------------

    @property
    def files(self) -> OutputFiles:
        return self.x.files

    @property
    def sampler_step_s(self) -> float:
        return self.x.sampler_step_s()

    @property
    def previews(self) -> bool:
        method: Any = self.extra_data.get("preview_method")
        if method not in PREVIEW_METHODS:  # absent or "default": the server's setting
            method = self.x.preview_method()
        return bool(method != "none")

    async def progress(self, value: int, total: int, preview: FakeImage | None = None) -> None:
        self.x.interrupt.throw_if_requested()
        self.progress_state.update(self.node_id, value, total)
        self._send_progress_state()
        png = self._preview_png(preview) if preview is not None else None
        with_metadata = self.x.hub.supports(self.client_id, "supports_preview_metadata")
        if png is not None and with_metadata:
            metadata = {
                "node_id": self.node_id,
                "prompt_id": self.prompt_id,
                "display_node_id": self.node_id,
                "parent_node_id": None,
                "real_node_id": self.node_id,
                "image_type": "image/png",
            }
            header = json.dumps(metadata).encode()
            payload = struct.pack(">I", len(header)) + header + png
            self.x.hub.send(PREVIEW_IMAGE_WITH_METADATA, payload, self.client_id)
        progress = {"value": value, "max": total, "prompt_id": self.prompt_id, "node": self.node_id}
        self.x.hub.send("progress", progress, self.client_id)
        if png is not None and not with_metadata:
            self.x.hub.send(PREVIEW_IMAGE, struct.pack(">I", PNG_FORMAT) + png, self.client_id)

    async def wait_for_interrupt(self) -> NoReturn:
        await self.x.interrupt.wait()

    async def load_model(self, name: str) -> None:
        await self.x.load_model(name)

    # -- execution ---------------------------------------------------------------------------

    async def run(self) -> Execution:
        hub = self.x.hub
        hub.owner_sid = self.client_id
        self.x.interrupt.clear()
        self._add_message("execution_start", {"prompt_id": self.prompt_id})
        signatures = self.signatures
        cache = self.x.cache
        if self.x.caching():
            cache.set_prompt(set(signatures.values()))
        else:
            cache.clear()
        cached = [n for n in self.prompt if cache.get(signatures[n]) is not None]
        self._add_message("execution_cached", {"nodes": cached, "prompt_id": self.prompt_id})
        classes = self.x.classes()
        order = execution_order(
            self.prompt, self.outputs, classes, lambda n: cache.get(signatures[n]) is not None
        )
        try:
            for node_id in order:
                self.node_id = node_id
                entry = cache.get(signatures[node_id])
                if entry is not None:
                    self._replay_cached(node_id, entry)
                else:
                    await self._execute_node(node_id, classes, signatures[node_id])
            self._add_message("execution_success", {"prompt_id": self.prompt_id})
        except InterruptProcessingError:
            self._interrupted()
        except _NodeFailed as failed:
            self._failed(failed)
        finally:
            hub.last_node_id = None
        return self.result

    def _replay_cached(self, node_id: str, entry: CacheEntry) -> None:
        if self.client_id is not None:
            output = {
                "node": node_id,
                "display_node": node_id,
                "output": entry.ui,
                "prompt_id": self.prompt_id,
            }
            self.x.hub.send("executed", output, self.client_id)
        if entry.ui is not None:
            self._record_output(node_id, entry.ui)
        self.progress_state.finish(node_id)
        self._send_progress_state()

    async def _execute_node(
        self, node_id: str, classes: Mapping[str, NodeClass], signature: str
    ) -> None:
        node = self.prompt[node_id]
        node_class = classes[node["class_type"]]
        self.progress_state.start(node_id)
        self._send_progress_state()
        inputs: dict[str, Any] = {}
        try:
            inputs = self._resolve_inputs(node["inputs"], node_class)
            if self.client_id is not None:
                self.x.hub.last_node_id = node_id
                executing = {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id}
                self.x.hub.send("executing", executing, self.client_id)
            # ``before_node_execution``: an interrupt lands on the node about to run.
            self.x.interrupt.throw_if_requested()
            call = NodeCall(node_id, inputs, self.prompt, self.extra_data, self)
            result = await node_class.run(call)
        except InterruptProcessingError:
            raise
        except Exception as ex:
            raise _NodeFailed(node_id, ex, self._current_inputs(inputs, node_class)) from ex
        self.values[node_id] = result.outputs
        if self.x.caching():
            self.x.cache.put(signature, CacheEntry(result.outputs, result.ui))
        if result.ui:
            self._record_output(node_id, result.ui)
            if self.client_id is not None:
                executed = {
                    "node": node_id,
                    "display_node": node_id,
                    "output": result.ui,
                    "prompt_id": self.prompt_id,
                }
                self.x.hub.send("executed", executed, self.client_id)
        self.progress_state.finish(node_id)
        self._send_progress_state()
        self.executed.append(node_id)

    def _resolve_inputs(self, raw: dict[str, Any], node_class: NodeClass) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        for spec in node_class.inputs:
            if spec.name not in raw:
                continue
            value = raw[spec.name]
            if is_link(value):
                source, index = value
                outputs = self.values.get(source)
                if outputs is None:
                    cached = self.x.cache.get(self.signatures[source])
                    outputs = cached.outputs if cached is not None else ()
                value = outputs[index]
            inputs[spec.name] = value
        return inputs

    def _current_inputs(self, inputs: dict[str, Any], node_class: NodeClass) -> dict[str, Any]:
        shown = {name: [_format_value(value)] for name, value in inputs.items()}
        if "prompt" in node_class.hidden:
            shown["prompt"] = [self.prompt]
        if "extra_pnginfo" in node_class.hidden:
            shown["extra_pnginfo"] = [_format_value(self.extra_data.get("extra_pnginfo"))]
        return shown

    def _record_output(self, node_id: str, ui: dict[str, Any]) -> None:
        self.result.outputs[node_id] = ui
        self.result.meta[node_id] = {
            "node_id": node_id,
            "display_node": node_id,
            "parent_node": None,
            "real_node_id": node_id,
        }

    def _interrupted(self) -> None:
        self.result.outcome = "interrupted"
        self.result.node_id = self.node_id
        message = {
            "prompt_id": self.prompt_id,
            "node_id": self.node_id,
            "node_type": self.prompt[self.node_id]["class_type"],
            "executed": list(reversed(self.executed)),
        }
        self._add_message("execution_interrupted", message, broadcast=True)

    def _failed(self, failed: _NodeFailed) -> None:
        self.result.outcome = "error"
        self.result.node_id = failed.node_id
        ex = failed.error
        message = {
            "prompt_id": self.prompt_id,
            "node_id": failed.node_id,
            "node_type": self.prompt[failed.node_id]["class_type"],
            "executed": list(reversed(self.executed)),
            "exception_message": f"{ex}\n",
            "exception_type": full_type_name(type(ex)),
            "traceback": traceback.format_tb(ex.__traceback__),
            "current_inputs": failed.current_inputs,
            "current_outputs": list(reversed(list(self.prompt))),
        }
        self._add_message("execution_error", message)

    def _add_message(self, event: str, data: dict[str, Any], broadcast: bool = False) -> None:
        """``PromptExecutor.add_message``: record in history, send if there is an owner (or
        to everyone when ``broadcast``)."""
        data = {**data, "timestamp": _now_ms()}
        self.result.messages.append([event, data])
        if self.client_id is not None or broadcast:
            self.x.hub.send(event, data, self.client_id)

    def _send_progress_state(self) -> None:
        self.x.hub.send("progress_state", self.progress_state.message(), self.client_id)

    @staticmethod
    def _preview_png(image: FakeImage) -> bytes:
        scale = min(1.0, PREVIEW_SIZE / max(image.width, image.height))
        width = max(1, round(image.width * scale))
        height = max(1, round(image.height * scale))
        return encode_solid_png(width, height, rgb_from_int(image.color))


class _NodeFailed(Exception):
    def __init__(self, node_id: str, error: Exception, current_inputs: dict[str, Any]) -> None:
        super().__init__(str(error))
        self.node_id = node_id
        self.error = error
        self.current_inputs = current_inputs


class PromptExecutor:
    """Runs prompts one at a time against shared cache, files, sockets and interrupt flag."""

    def __init__(
        self,
        *,
        hub: SocketHub,
        cache: OutputCache,
        files: OutputFiles,
        interrupt: InterruptFlag,
        classes: Callable[[], Mapping[str, NodeClass]],
        caching: Callable[[], bool],
        sampler_step_s: Callable[[], float],
        load_model: Callable[[str], Awaitable[None]],
        preview_method: Callable[[], str] = lambda: "none",
    ) -> None:
        self.hub = hub
        self.cache = cache
        self.files = files
        self.interrupt = interrupt
        self.classes = classes
        self.caching = caching
        self.sampler_step_s = sampler_step_s
        self.load_model = load_model
        self.preview_method = preview_method

    async def execute(self, item: QueueItem) -> Execution:
        """Run ``item`` to its terminal event; never raises for node failures."""
        return await _PromptRun(self, item).run()
