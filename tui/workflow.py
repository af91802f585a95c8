"""A summary of a job's workflow for the detail view: node count and the models it names."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: ComfyUI node inputs that name a model file.
COMFY_MODEL_INPUTS = (
    "ckpt_name", "lora_name", "vae_name", "unet_name", "model_name", "clip_name",
    "clip_name1", "clip_name2", "control_net_name", "upscale_model_name", "style_model_name",
)  # fmt: skip
#: A1111 ``override_settings`` entries that name a model.
A1111_MODEL_SETTINGS = ("sd_model_checkpoint", "sd_model_name", "sd_vae")


@dataclass(frozen=True)
class WorkflowSummary:
    kind: str  # "ComfyUI graph", "A1111 request", or "unreadable"
    node_count: int | None
    models: tuple[str, ...]
    detail: str = ""
    #: ComfyUI: node id -> class_type, to name the node an error points at.
    node_classes: tuple[tuple[str, str], ...] = ()

    def node_class(self, node: str) -> str | None:
        return dict(self.node_classes).get(node)


def summarize_workflow(raw: str | None) -> WorkflowSummary:
    """Summarize the workflow JSON stored with a job (never raises)."""
    if raw is None:
        return WorkflowSummary("unavailable", None, (), "the job record has no workflow")
    try:
        data = json.loads(raw)
    except ValueError as e:
        return WorkflowSummary("unreadable", None, (), f"not JSON: {e}")
    if not isinstance(data, Mapping):
        return WorkflowSummary("unreadable", None, (), f"a JSON {type(data).__name__}")
    if data and all(isinstance(n, Mapping) and "class_type" in n for n in data.values()):
        classes = tuple((str(k), str(v["class_type"])) for k, v in data.items())
        named = _unique(_comfy_models(data))
        return WorkflowSummary("ComfyUI graph", len(data), named, node_classes=classes)
    models: list[str] = []
    overrides = data.get("override_settings")
    if isinstance(overrides, Mapping):
        models = [str(overrides[k]) for k in A1111_MODEL_SETTINGS if overrides.get(k)]
    kind = "A1111 img2img request" if "init_images" in data else "A1111 txt2img request"
    steps = data.get("steps")
    detail = f"{steps} steps" if isinstance(steps, int) else ""
    return WorkflowSummary(kind, None, _unique(models), detail)


def _comfy_models(graph: Mapping[str, Any]) -> Iterator[str]:
    for node in graph.values():
        inputs = node.get("inputs")
        if not isinstance(inputs, Mapping):
            continue
        for name in COMFY_MODEL_INPUTS:
            value = inputs.get(name)
            if isinstance(value, str) and value:
                yield value


def _unique(items: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
