"""What a job needs from a machine, what a machine offers, and whether one meets the other.

Pure data and functions, no I/O: the client derives a job's :class:`Requirements` at submit,
a supervisor describes each backend instance as :class:`Capabilities`, and :func:`meets`
says whether a machine can run a job (or, in words, why not).

Requirements come from two places:

- **derived** from the workflow (:func:`derive`): for a ComfyUI API-format graph the node
  classes it uses and the model files its loader inputs name (``ckpt_name``, ``lora_name``,
  ``unet_name``, ...); for an A1111 body the checkpoint in
  ``override_settings.sd_model_checkpoint``, the LoRAs named in the prompt
  (``<lora:name:weight>``) and the scripts (``script_name``, ``alwayson_scripts``);
- **explicit** (:func:`parse_explicit`): ``{"labels": {"gpu": "h100"}, "min_vram_gb": 24}``.

Jobs with equal requirements share a *requirement class*, named by :attr:`Requirements.class_id`
(a hash of the canonical JSON form), so the queue can keep one list per class.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetq.errors import InvalidArgument

# -- model kinds -------------------------------------------------------------------------------

#: The loader inputs of ComfyUI's core nodes that name model files, as (class, input) -> the
#: ``models/`` folder the file list comes from (folder names as ComfyUI's ``folder_paths``).
#: Read from ComfyUI 0.3.64's ``/object_info``, where these are the combo inputs whose
#: choices are files on disk (empty lists on a server without models).
COMFYUI_MODEL_INPUTS: Mapping[tuple[str, str], str] = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "ckpt_name"): "checkpoints",
    ("CheckpointLoader", "config_name"): "configs",
    ("unCLIPCheckpointLoader", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLora", "ckpt_name"): "checkpoints",
    ("CreateHookModelAsLoraModelOnly", "ckpt_name"): "checkpoints",
    ("VAELoader", "vae_name"): "vae",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("CreateHookLora", "lora_name"): "loras",
    ("CreateHookLoraModelOnly", "lora_name"): "loras",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("DualCLIPLoader", "clip_name1"): "text_encoders",
    ("DualCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name1"): "text_encoders",
    ("TripleCLIPLoader", "clip_name2"): "text_encoders",
    ("TripleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name1"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name2"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name3"): "text_encoders",
    ("QuadrupleCLIPLoader", "clip_name4"): "text_encoders",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("ControlNetLoader", "control_net_name"): "controlnet",
    ("DiffControlNetLoader", "control_net_name"): "controlnet",
    ("StyleModelLoader", "style_model_name"): "style_models",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("GLIGENLoader", "gligen_name"): "gligen",
    ("DiffusersLoader", "model_path"): "diffusers",
    ("HypernetworkLoader", "hypernetwork_name"): "hypernetworks",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("PhotoMakerLoader", "photomaker_model_name"): "photomaker",
    ("ModelPatchLoader", "name"): "model_patches",
}

#: For node classes not in the table above (custom nodes), inputs whose name alone says which
#: model folder they pick from: custom loaders reuse the core input names.
COMFYUI_MODEL_INPUT_NAMES: Mapping[str, str] = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "unet_name": "diffusion_models",
    "control_net_name": "controlnet",
}

#: Choices custom loaders offer to mean "no file" (never a requirement).
_NO_FILE = frozenset({"None", "none", ""})

_KNOWN_CLASSES = frozenset(cls for cls, _ in COMFYUI_MODEL_INPUTS)

#: How a reason names one file of each kind ("needs checkpoint x.safetensors").
KIND_NAMES: Mapping[str, str] = {
    "checkpoints": "checkpoint",
    "configs": "model config",
    "vae": "VAE",
    "loras": "LoRA",
    "text_encoders": "text encoder",
    "diffusion_models": "diffusion model",
    "controlnet": "ControlNet",
    "style_models": "style model",
    "clip_vision": "CLIP vision model",
    "gligen": "GLIGEN model",
    "diffusers": "diffusers model",
    "hypernetworks": "hypernetwork",
    "upscale_models": "upscale model",
    "photomaker": "PhotoMaker model",
    "model_patches": "model patch",
    "scripts": "script",
    "samplers": "sampler",
}


def comfyui_model_kind(class_type: str, input_name: str) -> str | None:
    """The model folder a ComfyUI node input picks a file from, or None if it names no file."""
    kind = COMFYUI_MODEL_INPUTS.get((class_type, input_name))
    if kind is None and class_type not in _KNOWN_CLASSES:
        kind = COMFYUI_MODEL_INPUT_NAMES.get(input_name)
    return kind


def model_file_name(name: str) -> str:
    """A model file name as compared: Windows separators turned into ``/`` (ComfyUI lists
    files in subfolders with the host's separator)."""
    return name.replace("\\", "/")


# -- requirements ------------------------------------------------------------------------------

_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")
_MAX_LABEL_VALUE = 128
_MAX_VRAM_GB = 65536
_EXPLICIT_KEYS = ("labels", "min_vram_gb")


def _pairs(mapping: Mapping[str, Iterable[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{kind: names}`` in a canonical order, empty kinds dropped."""
    items = ((kind, tuple(sorted(set(names)))) for kind, names in mapping.items())
    return tuple(sorted((kind, names) for kind, names in items if names))


def _vram(value: float | None) -> float | int | None:
    """Integral sizes as ints, so 24 and 24.0 make the same class."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else float(value)


@dataclass(frozen=True)
class Requirements:
    """What one job needs of a machine. Immutable and hashable; equal requirements have
    equal :attr:`canonical` forms and :attr:`class_id`.

    Build one with :meth:`make`, :func:`derive`, :func:`parse_explicit` or
    :meth:`from_canonical`; combine two with ``a | b``.
    """

    nodes: frozenset[str] = frozenset()
    """ComfyUI node classes the workflow uses."""
    models: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Files by kind, ``(("checkpoints", ("a.safetensors",)), ("loras", (...)))``, sorted."""
    labels: tuple[tuple[str, str], ...] = ()
    """Operator labels the machine must carry, sorted ``(key, value)`` pairs."""
    min_vram_gb: float | int | None = None
    """Total GPU memory the machine must have, in GB."""

    @classmethod
    def make(
        cls,
        *,
        nodes: Iterable[str] = (),
        models: Mapping[str, Iterable[str]] | None = None,
        labels: Mapping[str, str] | None = None,
        min_vram_gb: float | None = None,
    ) -> Requirements:
        """Requirements from plain collections, normalised to the canonical order."""
        return cls(
            nodes=frozenset(nodes),
            models=_pairs(
                {kind: map(model_file_name, names) for kind, names in (models or {}).items()}
            ),
            labels=tuple(sorted((labels or {}).items())),
            min_vram_gb=_vram(min_vram_gb),
        )

    @property
    def model_files(self) -> dict[str, tuple[str, ...]]:
        """The files by kind, as a dict."""
        return dict(self.models)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def empty(self) -> bool:
        """True when any machine of the service can run the job."""
        return not (self.nodes or self.models or self.labels or self.min_vram_gb is not None)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form as a dict: only non-empty fields, every list sorted."""
        form: dict[str, Any] = {}
        if self.labels:
            form["labels"] = dict(self.labels)
        if self.min_vram_gb is not None:
            form["min_vram_gb"] = self.min_vram_gb
        if self.models:
            form["models"] = {kind: list(names) for kind, names in self.models}
        if self.nodes:
            form["nodes"] = sorted(self.nodes)
        return form

    @property
    def canonical(self) -> str:
        """Compact JSON with sorted keys: equal requirements give equal text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def class_id(self) -> str:
        """A short stable name for the requirement class: 16 hex digits of the SHA-256 of
        :attr:`canonical` (64 bits: collisions are out of reach for any real fleet)."""
        return hashlib.sha256(self.canonical.encode()).hexdigest()[:16]

    @classmethod
    def from_canonical(cls, text: str) -> Requirements:
        """Read :attr:`canonical` (or :meth:`to_dict` as JSON) back."""
        form = json.loads(text)
        if not isinstance(form, dict):
            raise ValueError("requirements must be a JSON object")
        return cls.make(
            nodes=form.get("nodes", ()),
            models=form.get("models") or {},
            labels=form.get("labels") or {},
            min_vram_gb=form.get("min_vram_gb"),
        )

    def __or__(self, other: Requirements) -> Requirements:
        """Both sets of requirements: unions of nodes and files, the larger memory; a label
        both name with different values is kept from ``other`` (explicit over derived)."""
        models = {kind: set(names) for kind, names in self.models}
        for kind, names in other.models:
            models.setdefault(kind, set()).update(names)
        vram = [v for v in (self.min_vram_gb, other.min_vram_gb) if v is not None]
        return Requirements.make(
            nodes=self.nodes | other.nodes,
            models=models,
            labels={**self.label_map, **other.label_map},
            min_vram_gb=max(vram) if vram else None,
        )


def parse_explicit(requires: object) -> Requirements:
    """Check explicit requirements (``{"labels": {...}, "min_vram_gb": 24}``); raise
    :class:`InvalidArgument` with a clear message for anything else. None means none."""
    if requires is None:
        return Requirements()
    if not isinstance(requires, Mapping):
        raise InvalidArgument(
            f"requires must be an object like {{'labels': {{...}}, 'min_vram_gb': 24}}, "
            f"not {type(requires).__name__}"
        )
    unknown = sorted(str(key) for key in requires if key not in _EXPLICIT_KEYS)
    if unknown:
        raise InvalidArgument(
            f"requires has unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(_EXPLICIT_KEYS)}"
        )
    labels = _check_labels(requires.get("labels"))
    vram = _check_vram(requires.get("min_vram_gb"))
    return Requirements.make(labels=labels, min_vram_gb=vram)


def _check_labels(labels: object) -> dict[str, str]:
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidArgument(
            f"requires.labels must be an object of key: value, not {labels!r:.60}"
        )
    checked: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            raise InvalidArgument(
                f"label key {key!r:.70} must be 1-63 letters, digits, '_', '.', '-' or '/', "
                "starting with a letter or digit"
            )
        if not isinstance(value, str):
            raise InvalidArgument(f"label {key} must have a string value, not {value!r:.60}")
        if len(value) > _MAX_LABEL_VALUE or not value.isprintable():
            raise InvalidArgument(
                f"label {key} value must be printable text of at most {_MAX_LABEL_VALUE} characters"
            )
        checked[key] = value
    return checked


def _check_vram(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"requires.min_vram_gb must be a number of GB, not {value!r:.60}")
    if not math.isfinite(value) or not 0 < value <= _MAX_VRAM_GB:
        raise InvalidArgument(
            f"requires.min_vram_gb must be more than 0 and at most {_MAX_VRAM_GB}, not {value!r}"
        )
    return float(value)


# -- derived requirements ----------------------------------------------------------------------

_LORA_IN_PROMPT = re.compile(r"<lora:([^:>]+)(?::[^>]*)?>")


def derive(service: str, workflow: Mapping[str, Any]) -> Requirements:
    """The requirements a workflow implies for ``service`` (``comfyui`` or ``a1111``; other
    services have none). Lenient: values that name nothing (links, non-strings) are skipped,
    since the workflow's shape is checked elsewhere."""
    if service == "comfyui":
        return derive_comfyui(workflow)
    if service == "a1111":
        return derive_a1111(workflow)
    return Requirements()


def derive_comfyui(graph: Mapping[str, Any]) -> Requirements:
    """Node classes and model files of an API-format graph (a ``{"prompt": graph}`` body is
    unwrapped)."""
    inner = graph.get("prompt")
    if isinstance(inner, Mapping) and all(isinstance(n, Mapping) for n in inner.values()):
        graph = inner
    nodes: set[str] = set()
    models: dict[str, set[str]] = {}
    for node in graph.values():
        if not isinstance(node, Mapping):
            continue
        class_type = node.get("class_type")
        if not isinstance(class_type, str) or not class_type:
            continue
        nodes.add(class_type)
        inputs = node.get("inputs")
        if not isinstance(inputs, Mapping):
            continue
        for name, value in inputs.items():
            kind = comfyui_model_kind(class_type, name)
            if kind is None or not isinstance(value, str) or value in _NO_FILE:
                continue
            models.setdefault(kind, set()).add(value)
    return Requirements.make(nodes=nodes, models=models)


def derive_a1111(body: Mapping[str, Any]) -> Requirements:
    """The checkpoint override, LoRAs named in the prompts, and scripts of an A1111 body.

    Script names are lower-cased, as A1111 compares them (``script_name`` "X/Y/Z plot" picks
    the script listed as "x/y/z plot").
    """
    models: dict[str, set[str]] = {}
    overrides = body.get("override_settings")
    if isinstance(overrides, Mapping):
        checkpoint = overrides.get("sd_model_checkpoint")
        if isinstance(checkpoint, str) and checkpoint.strip():
            models["checkpoints"] = {checkpoint.strip()}
    for field_name in ("prompt", "negative_prompt"):
        text = body.get(field_name)
        if isinstance(text, str):
            loras = {name.strip() for name in _LORA_IN_PROMPT.findall(text) if name.strip()}
            if loras:
                models.setdefault("loras", set()).update(loras)
    scripts: set[str] = set()
    script_name = body.get("script_name")
    if isinstance(script_name, str) and script_name.strip():
        scripts.add(script_name.strip().lower())
    always_on = body.get("alwayson_scripts")
    if isinstance(always_on, Mapping):
        scripts.update(str(name).strip().lower() for name in always_on if str(name).strip())
    if scripts:
        models["scripts"] = scripts
    return Requirements.make(models=models)


#: Kinds whose file is "the model" a backend keeps loaded between jobs (a checkpoint load
#: costs seconds; a LoRA or VAE is cheap): what warm-model affinity matches on.
AFFINITY_KINDS = ("checkpoints", "diffusion_models")


def affinity_models(requirements: Requirements) -> frozenset[str]:
    """The checkpoints (and diffusion models) a job loads: a GPU whose backend has one of
    these loaded runs the job without a model load."""
    files = requirements.model_files
    return frozenset(name for kind in AFFINITY_KINDS for name in files.get(kind, ()))


def requirements_for(
    service: str, workflow: Mapping[str, Any], requires: object = None
) -> Requirements:
    """Derived and explicit requirements together; raises :class:`InvalidArgument` for bad
    explicit ones."""
    return derive(service, workflow) | parse_explicit(requires)


# -- capabilities ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What one backend instance (on one GPU) can run.

    ``nodes`` is None for backends without node classes (A1111): node requirements are then
    unmet. ``models`` maps a kind (``checkpoints``, ``loras``, ``scripts``, ...) to every name
    the backend accepts for it (aliases included, e.g. A1111's title, file and hash).
    """

    nodes: frozenset[str] | None = None
    models: Mapping[str, frozenset[str]] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    vram_gb: float | None = None

    @classmethod
    def make(
        cls,
        *,
        nodes: Iterable[str] | None = None,
        models: Mapping[str, Iterable[str]] | None = None,
        labels: Mapping[str, str] | None = None,
        vram_gb: float | None = None,
    ) -> Capabilities:
        return cls(
            nodes=None if nodes is None else frozenset(nodes),
            models={
                kind: frozenset(map(model_file_name, names))
                for kind, names in (models or {}).items()
            },
            labels=dict(labels or {}),
            vram_gb=vram_gb,
        )

    def with_machine(
        self, *, labels: Mapping[str, str] | None = None, vram_gb: float | None = None
    ) -> Capabilities:
        """The same backend with the machine's operator labels and GPU memory added."""
        return Capabilities(
            nodes=self.nodes,
            models=self.models,
            labels={**self.labels, **(labels or {})},
            vram_gb=self.vram_gb if vram_gb is None else vram_gb,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form with every list sorted (for publishing and comparing)."""
        return {
            "nodes": None if self.nodes is None else sorted(self.nodes),
            "models": {kind: sorted(names) for kind, names in sorted(self.models.items())},
            "labels": dict(sorted(self.labels.items())),
            "vram_gb": self.vram_gb,
        }

    @classmethod
    def from_dict(cls, form: Mapping[str, Any]) -> Capabilities:
        return cls.make(
            nodes=form.get("nodes"),
            models=form.get("models") or {},
            labels=form.get("labels") or {},
            vram_gb=form.get("vram_gb"),
        )


def _listed(names: Iterable[str], limit: int = 3) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:limit])
    return shown + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "")


def _plural(word: str, count: int) -> str:
    if count == 1:
        return word
    return f"{word}es" if word.endswith(("s", "ch", "sh", "x")) else f"{word}s"


def meets(requirements: Requirements, capabilities: Capabilities) -> str | None:
    """None when ``capabilities`` satisfy ``requirements``; else why not, in words, every
    unmet part joined by "; " (``needs checkpoint flux1-dev.safetensors; needs label
    gpu=h100``), short enough for a status line."""
    reasons: list[str] = []
    if requirements.nodes:
        missing_nodes = requirements.nodes - (capabilities.nodes or frozenset())
        if missing_nodes:
            word = _plural("node class", len(missing_nodes))
            reasons.append(f"needs {word} {_listed(missing_nodes)}")
    for kind, names in requirements.models:
        missing = set(names) - capabilities.models.get(kind, frozenset())
        if missing:
            noun = KIND_NAMES.get(kind)  # else the folder's own name, a plural already
            word = kind if noun is None else _plural(noun, len(missing))
            reasons.append(f"needs {word} {_listed(missing)}")
    for key, value in requirements.labels:
        have = capabilities.labels.get(key)
        if have != value:
            reasons.append(f"needs label {key}={value}" + (f" (has {key}={have})" if have else ""))
    wanted = requirements.min_vram_gb
    if wanted is not None:
        have_gb = capabilities.vram_gb
        if have_gb is None:
            reasons.append(f"needs {wanted:g} GB of GPU memory (unknown here)")
        elif have_gb < wanted:
            reasons.append(f"needs {wanted:g} GB of GPU memory (has {have_gb:g})")
    return "; ".join(reasons) or None
