"""Validation at the edge: every input is checked here before anything is written to Redis."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from fleetq.a1111_rules import check_a1111_rules
from fleetq.config import Settings
from fleetq.errors import (
    InvalidArgument,
    InvalidJobId,
    InvalidPriority,
    InvalidWorkflow,
    PayloadTooLarge,
    UnknownService,
)
from fleetq.inputs import check_inputs
from fleetq.model import JobSpec
from fleetq.requirements import requirements_for
from fleetq.tenants import tenant_of

PRIORITY_MIN = -1000
PRIORITY_MAX = 1000
MAX_ATTEMPTS_LIMIT = 100
MAX_TIMEOUT_S = 7 * 24 * 3600
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_KEYS = 64
JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{16}$")
IDEMPOTENCY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")
HOST_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Not ``str.isdigit`` nor ``\d``: both accept Unicode digits (superscript two, Arabic-Indic
# zero...), which ``int`` then refuses or reads as a different digit.
_ASCII_DIGITS = re.compile(r"[0-9]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def is_ascii_int(raw: object, max_digits: int = 20) -> bool:
    """True when ``raw`` is a string of 1..``max_digits`` ASCII digits (no sign, no space)."""
    return (
        isinstance(raw, str)
        and 0 < len(raw) <= max_digits
        and _ASCII_DIGITS.fullmatch(raw) is not None
    )


def parse_ascii_int(raw: object, what: str, minimum: int = 0, maximum: int | None = None) -> int:
    """``raw`` as a non-negative integer written in ASCII digits, within ``minimum..maximum``.

    Every id and number that arrives as text (query strings, path segments, headers, command
    lines) goes through here, so a Unicode digit is a clear :class:`InvalidArgument` and never a
    different number or a crash.
    """
    bound = "" if maximum is None else f"..{maximum}"
    if not is_ascii_int(raw, 20 if maximum is None else max(1, len(str(maximum)))):
        raise InvalidArgument(
            f"{what} must be an integer {minimum}{bound} in ASCII digits: {raw!r}"
        )
    value = int(str(raw))
    if value < minimum or (maximum is not None and value > maximum):
        raise InvalidArgument(f"{what} must be an integer {minimum}{bound}, not {value}")
    return value


def check_job_id(job_id: object) -> str:
    """Return ``job_id`` if it has the form of a fleetq job id (16 lowercase hex digits)."""
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.fullmatch(job_id):
        raise InvalidJobId(f"{job_id!r} is not a job id (16 lowercase hex digits)")
    return job_id


def check_service(service: object, settings: Settings) -> str:
    if not isinstance(service, str) or service not in settings.services:
        known = ", ".join(settings.services)
        raise UnknownService(f"unknown service {service!r}; registered services: {known}")
    return service


def check_priority(priority: object) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidPriority(f"priority must be an integer, not {priority!r}")
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidPriority(
            f"priority {priority} is out of range {PRIORITY_MIN}..{PRIORITY_MAX} "
            "(higher runs first)"
        )
    return priority


def check_host_target(target: object) -> str:
    """A drain target: ``host`` or ``host:gpu``."""
    if not isinstance(target, str):
        raise InvalidArgument(f"drain target must be HOST or HOST:GPU, not {target!r}")
    host, sep, gpu = target.partition(":")
    if not HOST_PATTERN.fullmatch(host) or (sep and not is_ascii_int(gpu, 6)):
        raise InvalidArgument(
            f"drain target must be HOST or HOST:GPU (GPU an index), not {target!r}"
        )
    return target


def build_spec(
    workflow: object,
    settings: Settings,
    *,
    service: object = "comfyui",
    priority: object = 0,
    max_attempts: object = None,
    timeout_s: object = None,
    metadata: object = None,
    idempotency_key: object = None,
    requires: object = None,
    inputs: object = None,
    tenant: object = None,
) -> JobSpec:
    """Validate every submit argument and encode the job; raises a ``ValidationError``.

    ``inputs`` maps file names to bytes or paths (:func:`fleetq.inputs.check_inputs`). The
    job's requirement class comes from its workflow and ``requires`` (explicit ones:
    ``{"labels": {...}, "min_vram_gb": 24}``; see :mod:`fleetq.requirements`)."""
    svc = check_service(service, settings)
    who = tenant_of(tenant, metadata)
    prio = check_priority(priority)
    attempts = _check_attempts(
        settings.default_max_attempts if max_attempts is None else max_attempts
    )
    timeout = _check_timeout(settings.default_timeout_s if timeout_s is None else timeout_s)
    meta_json = _encode_metadata({} if metadata is None else metadata)
    key = _check_idempotency_key(idempotency_key)
    graph = normalize_workflow(workflow, svc)
    needs = requirements_for(svc, graph, requires)
    files = check_inputs(inputs, graph, svc, settings)
    try:
        workflow_json = json.dumps(graph, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidWorkflow(f"workflow is not plain JSON: {e}") from e
    except RecursionError as e:
        raise InvalidWorkflow("workflow is nested too deeply") from e
    size = len(workflow_json.encode()) + len(meta_json.encode())
    if size > settings.max_payload_bytes:
        raise PayloadTooLarge(
            f"job payload is {_human(size)}; the limit is {_human(settings.max_payload_bytes)} "
            "(FLEETQ_MAX_PAYLOAD_BYTES); send large inputs by reference, not inline"
        )
    return JobSpec(
        service=svc,
        workflow_json=workflow_json,
        priority=prio,
        max_attempts=attempts,
        timeout_ms=int(timeout * 1000),
        metadata_json=meta_json,
        idempotency_key=key,
        class_id="" if needs.empty else needs.class_id,
        requirements_json="" if needs.empty else needs.canonical,
        inputs=files,
        tenant=who,
    )


def normalize_workflow(workflow: object, service: str) -> dict[str, Any]:
    """Check the workflow's shape for its backend; returns the graph or request body to run.

    ComfyUI takes an API-format graph ``{node_id: {"class_type": ..., "inputs": {...}}}``;
    a body ``{"prompt": graph, ...}`` as posted to ComfyUI's ``/prompt`` is unwrapped.
    A1111 takes a ``txt2img`` / ``img2img`` request body.
    """
    if isinstance(workflow, (str, bytes)):
        try:
            workflow = json.loads(workflow)
        except ValueError as e:
            raise InvalidWorkflow(f"workflow is not valid JSON: {e}") from e
        except RecursionError as e:
            raise InvalidWorkflow("workflow is nested too deeply") from e
    if not isinstance(workflow, Mapping):
        raise InvalidWorkflow(f"workflow must be a JSON object, not {type(workflow).__name__}")
    if service == "comfyui":
        return _check_comfyui_graph(workflow)
    if service == "a1111":
        return _check_a1111_body(workflow)
    return dict(workflow)


def _check_comfyui_graph(workflow: Mapping[str, Any]) -> dict[str, Any]:
    if "nodes" in workflow and "links" in workflow:
        raise InvalidWorkflow(
            "this is a ComfyUI workflow in the UI's save format; export it in API format "
            "(ComfyUI menu: Workflow > Export (API), or 'Save (API Format)' with dev mode on)"
        )
    prompt = workflow.get("prompt")
    if isinstance(prompt, Mapping) and _looks_like_graph(prompt):
        workflow = prompt
    if not workflow:
        raise InvalidWorkflow("ComfyUI workflow is empty: it has no nodes")
    for node_id, node in workflow.items():
        if not isinstance(node, Mapping):
            raise InvalidWorkflow(
                f"ComfyUI node {node_id!r} must be an object with class_type and inputs"
            )
        class_type = node.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            raise InvalidWorkflow(f"ComfyUI node {node_id!r} has no class_type")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, Mapping):
            raise InvalidWorkflow(f"ComfyUI node {node_id!r}: inputs must be an object")
        prefix = inputs.get("filename_prefix")
        if isinstance(prefix, str) and _CONTROL.search(prefix):
            # The saved file could not be served back (its name goes into an HTTP header).
            raise InvalidWorkflow(
                f"ComfyUI node {node_id!r}: filename_prefix {prefix[:80]!r} contains a control "
                "character (such as a line break)"
            )
    return dict(workflow)


def _looks_like_graph(candidate: Mapping[str, Any]) -> bool:
    return bool(candidate) and all(
        isinstance(v, Mapping) and "class_type" in v for v in candidate.values()
    )


_A1111_TYPES: dict[str, tuple[type, ...]] = {
    "prompt": (str,),
    "negative_prompt": (str,),
    "steps": (int,),
    "width": (int,),
    "height": (int,),
    "batch_size": (int,),
    "n_iter": (int,),
    "cfg_scale": (int, float),
    "seed": (int,),
    "sampler_name": (str,),
    "scheduler": (str,),
    "denoising_strength": (int, float),
    "init_images": (list,),
    "override_settings": (dict,),
}
_A1111_RANGES = {
    "steps": (1, 1000),
    "width": (8, 16384),
    "height": (8, 16384),
    "batch_size": (1, 100),
    "n_iter": (1, 100),
}


def _check_a1111_body(body: Mapping[str, Any]) -> dict[str, Any]:
    if _looks_like_graph(body):
        raise InvalidWorkflow("this looks like a ComfyUI graph; submit it with service 'comfyui'")
    for name, types in _A1111_TYPES.items():
        if name not in body:
            continue
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = " or ".join(t.__name__ for t in types)
            raise InvalidWorkflow(f"A1111 field {name!r} must be {wanted}, not {value!r:.60}")
        low_high = _A1111_RANGES.get(name)
        if low_high and isinstance(value, int) and not low_high[0] <= value <= low_high[1]:
            raise InvalidWorkflow(f"A1111 field {name!r}={value} is out of range {low_high}")
    init = body.get("init_images")
    if init is not None and not all(isinstance(i, str) for i in init):
        raise InvalidWorkflow("A1111 init_images must be a list of base64 strings")
    check_a1111_rules(body)
    return dict(body)


def _check_attempts(value: object) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_ATTEMPTS_LIMIT
    ):
        raise InvalidArgument(
            f"max_attempts must be an integer 1..{MAX_ATTEMPTS_LIMIT}, not {value!r}"
        )
    return value


def _check_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"timeout_s must be a number of seconds, not {value!r:.40}")
    # Compare before any float conversion: an int may be too large for a float.
    if not 0 < value <= MAX_TIMEOUT_S or not math.isfinite(value):
        raise InvalidArgument(
            f"timeout_s must be > 0 and at most {MAX_TIMEOUT_S}, not {value!r:.40}"
        )
    return float(value)


def _encode_metadata(metadata: object) -> str:
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata must be a dict, not {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidArgument(f"metadata has {len(metadata)} keys; at most {MAX_METADATA_KEYS}")
    for key in metadata:
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            raise InvalidArgument(f"metadata keys must be strings of 1-64 characters: {key!r:.80}")
    try:
        encoded = json.dumps(dict(metadata), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(f"metadata is not plain JSON: {e}") from e
    except RecursionError as e:
        raise InvalidArgument("metadata is nested too deeply") from e
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise InvalidArgument(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    return encoded


def _check_idempotency_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not IDEMPOTENCY_PATTERN.fullmatch(key):
        raise InvalidArgument(
            "idempotency_key must be 1-200 printable ASCII characters without spaces"
        )
    return key


def _human(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} bytes"
