"""What ComfyUI's answers mean for a job: pure functions, no I/O.

Turns ``POST /prompt`` rejections, ``execution_error`` payloads and ``/history`` entries into
fleetq's vocabulary (``JobError``, output file references), and follows a run's WebSocket
frames into one progress value. Shapes are those of ComfyUI 0.3.64 as recorded in
``reference/comfyui-captures``; anything else is :class:`Malformed`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetq.model import FaultKind, JobError

from .base import ProgressSink

#: How much of a traceback a ``JobError`` keeps (the last frames are the useful ones).
TRACEBACK_FRAMES = 8
TRACEBACK_CHARS = 4000
_NODE_IN_DETAILS = re.compile(r"Node ID '#([^']+)'")


class Malformed(Exception):
    """An answer that does not have the shape ComfyUI gives."""


# -- workflow -------------------------------------------------------------------------------


def extract_prompt(workflow: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a job's workflow into ``(graph, extra body fields)``.

    The workflow is an API-format graph ``{node_id: {"class_type", "inputs"}}``, or a whole
    ``POST /prompt`` body ``{"prompt": graph, "extra_data": ..., ...}``, of which
    ``extra_data`` and ``partial_execution_targets`` are kept (``client_id``, ``prompt_id``,
    ``number`` and ``front`` are the adapter's to set). Raises ``ValueError`` for a shape the
    server would answer with a bare HTTP 500 (``prompt`` a list, a node not an object).
    """
    extra: dict[str, Any] = {}
    graph: Any = workflow
    inner = workflow.get("prompt")
    if isinstance(inner, Mapping) and "class_type" not in inner:
        graph = inner
        for key in ("extra_data", "partial_execution_targets"):
            if key in workflow:
                extra[key] = workflow[key]
    elif isinstance(inner, list):
        raise ValueError("'prompt' must be an object of nodes, not a list")
    if not isinstance(graph, Mapping):
        raise ValueError("the workflow must be an object of nodes")
    for node_id, node in graph.items():
        if not isinstance(node, Mapping):
            raise ValueError(f"node {node_id!r} must be an object with class_type and inputs")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, Mapping):
            raise ValueError(f"node {node_id!r}: inputs must be an object")
    return dict(graph), extra


# -- POST /prompt ---------------------------------------------------------------------------


def _trim_traceback(traceback: Any) -> list[str]:
    if isinstance(traceback, str):
        traceback = [traceback]
    if not isinstance(traceback, list):
        return []
    frames = [str(frame) for frame in traceback[-TRACEBACK_FRAMES:]]
    while frames and sum(len(f) for f in frames) > TRACEBACK_CHARS:
        frames.pop(0)
    return frames


def _trim_node_errors(node_errors: Mapping[str, Any]) -> dict[str, Any]:
    """``node_errors`` without the long bits (tracebacks, huge combo lists)."""
    trimmed: dict[str, Any] = {}
    for node_id, entry in node_errors.items():
        if not isinstance(entry, Mapping):
            continue
        errors = []
        for error in entry.get("errors") or ():
            if not isinstance(error, Mapping):
                continue
            extra = error.get("extra_info")
            extra = dict(extra) if isinstance(extra, Mapping) else {}
            if "traceback" in extra:
                extra["traceback"] = _trim_traceback(extra["traceback"])
            extra.pop("input_config", None)
            errors.append({**error, "extra_info": extra})
        trimmed[str(node_id)] = {
            "errors": errors,
            "dependent_outputs": entry.get("dependent_outputs", []),
            "class_type": entry.get("class_type"),
        }
    return trimmed


def _describe(error: Mapping[str, Any]) -> str:
    message = str(error.get("message") or error.get("type") or "invalid")
    details = error.get("details")
    if details and str(details) not in message:
        message = f"{message}: {details}"
    return message


def rejection(body: Any) -> JobError:
    """The ``JobError`` for a 400 answer to ``POST /prompt``.

    ``type`` is the whole-prompt error type (``invalid_prompt``, ``prompt_no_outputs``,
    ``no_prompt``, ``prompt_outputs_failed_validation``...); when nodes failed, ``node`` and
    ``message`` come from the first node's first error (``Value 0 smaller than min of 1:
    width``) and ``details`` keeps every node's errors, trimmed.
    """
    if not isinstance(body, Mapping) or "error" not in body:
        raise Malformed(f"400 without an 'error': {str(body)[:200]}")
    error = body["error"]
    node_errors = body.get("node_errors")
    if isinstance(error, str):  # servers before 2025-04: {"error": "no prompt", "node_errors": []}
        error = {"type": error.replace(" ", "_"), "message": error}
    if not isinstance(error, Mapping):
        raise Malformed(f"400 with an unexpected 'error': {str(error)[:200]}")
    error_type = str(error.get("type") or "invalid_prompt")
    message = _describe(error)
    node: str | None = None
    details: dict[str, Any] = {"error": {k: error.get(k) for k in ("type", "message", "details")}}
    match = _NODE_IN_DETAILS.search(str(error.get("details") or ""))
    if match:
        node = match.group(1)
    if isinstance(node_errors, Mapping) and node_errors:
        trimmed = _trim_node_errors(node_errors)
        details["node_errors"] = trimmed
        first_id, first = next(iter(trimmed.items()))
        node = first_id
        if first["class_type"]:
            details["class_type"] = first["class_type"]
        if first["errors"]:
            first_error = first["errors"][0]
            details["reason"] = first_error.get("type")
            message = _describe(first_error)
            count = sum(len(entry["errors"]) for entry in trimmed.values())
            if count > 1:
                message += f" (+{count - 1} more)"
    return JobError(
        type=error_type, message=message, node=node, kind=FaultKind.FINAL, details=details
    )


@dataclass(frozen=True)
class Accepted:
    """A 200 answer to ``POST /prompt``."""

    prompt_id: str
    number: float | None
    #: Outputs that failed validation and were dropped; the rest runs (trimmed).
    node_errors: Mapping[str, Any]


def accepted(body: Any, sent_prompt_id: str) -> Accepted:
    if not isinstance(body, Mapping):
        raise Malformed(f"POST /prompt answered 200 with {str(body)[:200]!r}")
    prompt_id = body.get("prompt_id", sent_prompt_id)
    if not isinstance(prompt_id, str) or not prompt_id:
        raise Malformed(f"POST /prompt answered an unusable prompt_id {prompt_id!r}")
    number = body.get("number")
    node_errors = body.get("node_errors") or {}
    if not isinstance(node_errors, Mapping):
        node_errors = {}
    return Accepted(
        prompt_id,
        float(number) if isinstance(number, (int, float)) else None,
        _trim_node_errors(node_errors),
    )


# -- execution results ----------------------------------------------------------------------


def runtime_error(data: Mapping[str, Any]) -> JobError:
    """The ``JobError`` for an ``execution_error`` payload (WebSocket or history)."""
    node_id = data.get("node_id")
    exception_type = str(data.get("exception_type") or "ExecutionError")
    message = str(data.get("exception_message") or "").strip() or "node failed without a message"
    details = {
        "node_type": data.get("node_type"),
        "exception_type": exception_type,
        "traceback": _trim_traceback(data.get("traceback")),
    }
    if isinstance(data.get("executed"), list):
        details["executed"] = data["executed"]
    return JobError(
        type=exception_type,
        message=message,
        node=None if node_id is None else str(node_id),
        kind=FaultKind.JOB,
        details=details,
    )


@dataclass(frozen=True)
class FileRef:
    """One file a node reported, fetched with ``GET /view``."""

    filename: str
    subfolder: str
    type: str
    node: str


def view_query(ref: FileRef) -> dict[str, str]:
    """The query of ``GET /view`` for one file. The values come from the job (a workflow's
    ``filename_prefix``): pass them as ``params`` so the HTTP client percent-encodes them,
    never paste them into a URL."""
    return {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.type}


def unfetchable(ref: FileRef) -> JobError | None:
    """Why ComfyUI cannot serve this file, if a control character in its name means it cannot.

    ComfyUI answers ``/view`` with ``Content-Disposition: filename="<name>"``; its HTTP server
    refuses a header with CR or LF and drops the connection, which would look like a backend
    outage. The name comes from the job (``filename_prefix``), so the job is at fault and
    retrying cannot help. (The subfolder is only part of the query, which is encoded.)
    """
    bad = next((c for c in ref.filename if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0), None)
    if bad is None:
        return None
    return JobError(
        "UnsafeOutputName",
        f"node {ref.node} saved a file named {ref.filename[:120]!r}, with the control "
        f"character {bad!r}, which ComfyUI cannot serve; remove it from the node's "
        "filename_prefix",
        node=ref.node,
        kind=FaultKind.FINAL,
    )


@dataclass(frozen=True)
class Finished:
    """How a prompt ended according to its history entry."""

    #: ``success``, ``error`` or ``interrupted``.
    outcome: str
    files: tuple[FileRef, ...] = ()
    error: JobError | None = None
    texts: tuple[str, ...] = ()


def output_files(outputs: Mapping[str, Any]) -> tuple[FileRef, ...]:
    """Every ``{filename, subfolder, type}`` item of every node's UI dict (``images``,
    ``gifs``, ``video``, ``audio``...); ``temp`` previews only when nothing else exists."""
    refs: list[FileRef] = []
    for node_id, ui in outputs.items():
        if not isinstance(ui, Mapping):
            continue
        for items in ui.values():
            if not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, Mapping) or not isinstance(item.get("filename"), str):
                    continue
                ref = FileRef(
                    item["filename"],
                    str(item.get("subfolder") or ""),
                    str(item.get("type") or "output"),
                    str(node_id),
                )
                if ref not in refs:
                    refs.append(ref)
    kept = [ref for ref in refs if ref.type != "temp"]
    return tuple(kept or refs)


def _texts(outputs: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for ui in outputs.values():
        if isinstance(ui, Mapping) and isinstance(ui.get("text"), list):
            found.extend(str(t) for t in ui["text"])
    return tuple(found)


def finished(entry: Any) -> Finished:
    """Read one ``/history/{id}`` entry: success with its files, error, or interrupted."""
    if not isinstance(entry, Mapping):
        raise Malformed(f"history entry is {type(entry).__name__}, not an object")
    outputs = entry.get("outputs")
    outputs = {} if outputs is None else outputs
    if not isinstance(outputs, Mapping):
        raise Malformed("history 'outputs' is not an object")
    status = entry.get("status")
    messages: Sequence[Any] = []
    status_str = "success"
    if isinstance(status, Mapping):
        status_str = str(status.get("status_str") or "success")
        raw = status.get("messages")
        messages = raw if isinstance(raw, list) else []
    events = {
        message[0]: message[1]
        for message in messages
        if isinstance(message, list) and len(message) == 2 and isinstance(message[1], Mapping)
    }
    if "execution_interrupted" in events:
        return Finished("interrupted")
    if "execution_error" in events:
        return Finished("error", error=runtime_error(events["execution_error"]))
    if status_str != "success":
        error = JobError(
            type="ExecutionError",
            message=f"ComfyUI reported status {status_str!r} without an execution_error",
            kind=FaultKind.JOB,
        )
        return Finished("error", error=error)
    return Finished("success", files=output_files(outputs), texts=_texts(outputs))


def queue_ids(body: Any) -> tuple[set[str], set[str]]:
    """``(running, pending)`` prompt ids of a ``GET /queue`` answer."""
    if not isinstance(body, Mapping):
        raise Malformed("GET /queue did not answer an object")
    found: list[set[str]] = []
    for key in ("queue_running", "queue_pending"):
        items = body.get(key)
        if not isinstance(items, list):
            raise Malformed(f"GET /queue: {key!r} is not a list")
        found.append({str(i[1]) for i in items if isinstance(i, list) and len(i) > 1})
    return found[0], found[1]


def queue_remaining(body: Any) -> int:
    """``exec_info.queue_remaining`` of ``GET /prompt`` (or a ``status`` frame)."""
    try:
        value = body["exec_info"]["queue_remaining"]
    except (KeyError, TypeError) as e:
        raise Malformed("GET /prompt has no exec_info.queue_remaining") from e
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"queue_remaining is {value!r}")
    return value


def parse_frame(text: str) -> tuple[str, Mapping[str, Any]] | None:
    """``(type, data)`` of a JSON WebSocket frame, or None for anything else."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, Mapping) or not isinstance(message.get("type"), str):
        return None
    data = message.get("data")
    return message["type"], data if isinstance(data, Mapping) else {}


# -- progress -------------------------------------------------------------------------------


class ProgressTracker:
    """Turns a run's frames into ``progress(fraction, text)`` calls that never go backwards.

    ``fraction = (finished nodes + value/max of the running node) / nodes in the graph``,
    held below 1.0 until the run is done. Finished nodes are those listed in
    ``execution_cached``, marked ``finished`` by ``progress_state``, or left behind by an
    ``executing`` of the next node. The text names the running node's class and its bar:
    ``"KSampler 8/20"``, or just ``"VAEDecode"`` for a node without one.
    """

    def __init__(self, graph: Mapping[str, Any], sink: ProgressSink) -> None:
        self._classes = {
            str(node_id): str(node.get("class_type") or node_id) for node_id, node in graph.items()
        }
        self._total = max(1, len(graph))
        self._sink = sink
        self._finished: set[str] = set()
        self._current: str | None = None
        self._value = 0.0
        self._max = 0.0
        self._best = 0.0
        self._last: tuple[float, str] | None = None

    @property
    def fraction(self) -> float:
        return self._best

    def status(self, text: str) -> None:
        self._emit(text)

    def feed(self, kind: str, data: Mapping[str, Any]) -> None:
        """Follow one WebSocket frame of the prompt; frames without progress are ignored."""
        if kind == "executing" and data.get("node") is not None:
            self.executing(data["node"])
        elif kind == "progress":
            self.node_progress(data.get("node"), data.get("value"), data.get("max"))
        elif kind == "progress_state":
            self.progress_state(data.get("nodes"))
        elif kind == "execution_cached":
            self.cached(data.get("nodes"))
        elif kind == "execution_start":
            self.status("running")

    def cached(self, nodes: Any) -> None:
        if isinstance(nodes, list):
            self._finished.update(str(n) for n in nodes if str(n) in self._classes)
        self._emit()

    def executing(self, node: Any) -> None:
        node_id = str(node)
        if self._current is not None and self._current != node_id:
            self._finished.add(self._current)
        if self._current != node_id:
            self._current = node_id
            self._value = self._max = 0.0
        self._emit()

    def node_progress(self, node: Any, value: Any, maximum: Any) -> None:
        if node is not None and str(node) != self._current:
            self.executing(node)
        if isinstance(value, (int, float)) and isinstance(maximum, (int, float)) and maximum > 0:
            self._value, self._max = float(value), float(maximum)
        self._emit()

    def progress_state(self, nodes: Any) -> None:
        if not isinstance(nodes, Mapping):
            return
        running: str | None = None
        value: Any = None
        maximum: Any = None
        for node_id, entry in nodes.items():
            if not isinstance(entry, Mapping):
                continue
            if entry.get("state") == "finished" and str(node_id) in self._classes:
                self._finished.add(str(node_id))
            elif entry.get("state") == "running":
                running = str(node_id)
                value, maximum = entry.get("value"), entry.get("max")
        if running is not None and running not in self._finished:
            if running != self._current:
                self.executing(running)
            self.node_progress(running, value, maximum)
        else:
            self._emit()

    def done(self) -> None:
        self._best = 1.0
        self._current = None
        self._emit("done")

    def _compute(self) -> float:
        done = len(self._finished)
        inside = 0.0
        if self._current is not None and self._current not in self._finished and self._max > 0:
            inside = min(1.0, self._value / self._max)
        return min(0.99, (done + inside) / self._total)

    def _text(self) -> str:
        if self._current is None or self._current in self._finished:
            return f"{len(self._finished)}/{self._total} nodes"
        name = self._classes.get(self._current, self._current)
        if self._max > 1:
            return f"{name} {self._value:g}/{self._max:g}"
        return name

    def _emit(self, text: str | None = None) -> None:
        if self._best < 1.0:
            self._best = max(self._best, self._compute())
        point = (self._best, text if text is not None else self._text())
        if point != self._last:
            self._last = point
            self._sink(*point)


# -- probes and logs ------------------------------------------------------------------------


def system_info(stats: Any) -> dict[str, Any]:
    """Version and devices (name, type, index, VRAM) from ``GET /system_stats``."""
    if not isinstance(stats, Mapping) or not isinstance(stats.get("system"), Mapping):
        raise Malformed("GET /system_stats has no 'system' object")
    devices = []
    for device in stats.get("devices") or ():
        if isinstance(device, Mapping):
            keys = ("name", "type", "index", "vram_total", "vram_free")
            devices.append({key: device.get(key) for key in keys})
    return {"version": stats["system"].get("comfyui_version"), "devices": devices}


def node_error_summary(node_errors: Mapping[str, Any]) -> str:
    """One line for the log: ``node 4 (SaveImage): Required input is missing``."""
    parts = []
    for node_id, entry in node_errors.items():
        reasons = [str(e.get("message")) for e in entry.get("errors", ()) if isinstance(e, dict)]
        parts.append(f"node {node_id} ({entry.get('class_type')}): {'; '.join(reasons)}")
    return ", ".join(parts)
