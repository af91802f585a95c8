"""Settings of the fake ComfyUI: fixed at start, several of them switchable at run time."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from supervisor.sim.listener import STARTUP_MODES, StartupMode

PREVIEW_METHODS = ("none", "auto", "latent2rgb", "taesd")
"""``--preview-method`` of ComfyUI (``comfy/cli_args.py``); ``none`` is the default."""

MAXIMUM_HISTORY_SIZE = 10000
"""ComfyUI's own cap (``execution.py``); the oldest entry is evicted first."""

MODEL_FOLDERS = (
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
    "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen",
    "upscale_models", "custom_nodes", "hypernetworks", "photomaker", "classifiers",
    "model_patches", "audio_encoders",
)  # fmt: skip
"""``GET /models`` of ComfyUI 0.3.64: the folder names under ``models/``."""


def _names(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)) and all(isinstance(n, str) and n for n in value):
        return tuple(value)
    raise ValueError(f"{what} must be a list of names")


def _check_models(models: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(models, Mapping):
        raise ValueError("models must map a folder (checkpoints, loras, ...) to file names")
    unknown = sorted(str(folder) for folder in models if folder not in MODEL_FOLDERS)
    if unknown:
        raise ValueError(f"unknown model folder(s) {', '.join(unknown)}; known: {MODEL_FOLDERS}")
    return {folder: _names(files, f"models[{folder!r}]") for folder, files in models.items()}


def _check_types(options: ComfyUIOptions) -> None:
    """Reject values of the wrong type early (``/fake/config`` takes JSON from anyone)."""
    for name in ("history_delay_s", "startup_delay_s", "sampler_step_s"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
    for name in ("max_history", "vram_total_bytes", "max_upload_size", "upload_status"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if not isinstance(options.caching, bool):
        raise ValueError(f"caching must be true or false, got {options.caching!r}")
    if not isinstance(options.checkpoints, tuple) or not all(
        isinstance(name, str) for name in options.checkpoints
    ):
        raise ValueError("checkpoints must be a list of file names")
    if not isinstance(options.model_load_s, (int, float)) or isinstance(options.model_load_s, bool):
        raise ValueError(f"model_load_s must be a number, got {options.model_load_s!r}")
    if options.preview_method not in PREVIEW_METHODS:
        raise ValueError(f"preview_method must be one of {PREVIEW_METHODS}")
    if options.base_dir is not None and not isinstance(options.base_dir, str):
        raise ValueError("base_dir must be a string")


@dataclass(frozen=True)
class ComfyUIOptions:
    """Behaviour switches of one fake ComfyUI instance.

    Fields marked *runtime* may be changed on a running server with
    ``FakeComfyUI.configure(...)`` or ``POST /fake/config``.
    """

    history_delay_s: float = 0.0
    """*runtime*: wait this long between the terminal event (``execution_success`` / ``_error``
    / ``_interrupted``) and the history write; reproduces ComfyUI issue #11540. The final
    ``status`` and ``executing{node:null}`` still come after the write."""
    caching: bool = True
    """*runtime*: classic output cache (identical graphs are served from cache). False is
    ComfyUI's ``--cache-none``."""
    startup_delay_s: float = 0.0
    """*runtime*: unreachable for this long after start and after each ``restart`` (see
    ``startup_mode``)."""
    startup_mode: StartupMode = "refuse"
    """*runtime*: ``"refuse"`` (port not listening yet) or ``"503"`` (every route answers 503)."""
    sampler_step_s: float = 0.02
    """*runtime*: duration of one KSampler step (each step sends a ``progress`` frame)."""
    preview_method: str = "none"
    """*runtime*: ComfyUI's ``--preview-method``. Other than ``none``, every KSampler step
    also sends a binary preview frame (PNG, scaled to fit 512 px; the real server sends JPEG):
    format 4 with metadata to a socket that announced ``supports_preview_metadata``, else
    format 1. A prompt's ``extra_data.preview_method`` overrides it, as in newer ComfyUI."""
    checkpoints: tuple[str, ...] = ()
    """*runtime*: files in ``models/checkpoints``; empty makes ``CheckpointLoaderSimple`` fail
    validation with ``value_not_in_list``, as on a server without models."""
    models: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """*runtime*: files per ``models/`` folder (``{"loras": ["detail.safetensors"], ...}``);
    the loader nodes offer them (``checkpoints`` here adds to the ``checkpoints`` field), so a
    workflow naming a file the instance lacks fails validation with ``value_not_in_list``."""
    nodes: tuple[str, ...] | None = None
    """*runtime*: the node classes this instance has (None: every class the fake knows);
    a workflow using another one fails validation as an unknown ``class_type``."""
    custom_nodes: tuple[str, ...] = ()
    """*runtime*: extra node classes standing in for custom nodes: each passes an optional
    ``image`` through (else makes a 64x64 grey image) and returns an IMAGE."""
    model_load_s: float = 0.0
    """*runtime*: time a checkpoint (or diffusion model) load takes: charged when a loader
    node runs with a model other than the one loaded (the first use, and after another one
    was used or ``/free`` unloaded it). Not interruptible, like a real load."""
    comfyui_version: str = "0.3.64"
    """Reported in ``/system_stats``."""
    device_name: str = "cuda:0 NVIDIA Fake GPU : cudaMallocAsync"
    """The device reported in ``/system_stats`` (type ``cuda`` unless it starts with ``cpu``)."""
    vram_total_bytes: int = 24 * 1024**3
    base_dir: str | None = None
    """Folder holding ``output/``, ``input/`` and ``temp/``; None means a private temporary
    folder per instance, deleted on stop."""
    max_history: int = MAXIMUM_HISTORY_SIZE
    """*runtime*: history entries kept; the oldest is evicted first."""
    max_upload_size: int = 100 * 1024**2
    """*runtime*: ``--max-upload-size`` in bytes: a bigger upload is refused with aiohttp's
    413, and ``/features`` advertises it."""
    upload_status: int = 0
    """*runtime*: answer every ``POST /upload/image`` with this HTTP status and store nothing
    (0: store uploads as ComfyUI does); plays a full disk or a failing proxy."""

    def __post_init__(self) -> None:
        if isinstance(self.checkpoints, list):
            object.__setattr__(self, "checkpoints", tuple(self.checkpoints))
        object.__setattr__(self, "models", _check_models(self.models))
        if self.nodes is not None:
            object.__setattr__(self, "nodes", _names(self.nodes, "nodes"))
        object.__setattr__(self, "custom_nodes", _names(self.custom_nodes, "custom_nodes"))
        _check_types(self)
        delays = (self.history_delay_s, self.startup_delay_s, self.sampler_step_s)
        if min(*delays, self.model_load_s) < 0:
            raise ValueError("delays must be >= 0")
        if self.startup_mode not in STARTUP_MODES:
            raise ValueError(f"startup_mode must be one of {STARTUP_MODES}")
        if self.max_history < 1:
            raise ValueError("max_history must be >= 1")

    def files(self, folder: str) -> tuple[str, ...]:
        """The files in one ``models/`` folder (``checkpoints`` joins both options)."""
        listed = self.models.get(folder, ())
        if folder == "checkpoints":
            return tuple(dict.fromkeys((*self.checkpoints, *listed)))
        return listed

    def replace(self, **changes: Any) -> ComfyUIOptions:
        """A copy with ``changes`` applied; unknown names raise ``TypeError``."""
        return dataclasses.replace(self, **changes)


RUNTIME_FIELDS = frozenset(
    {
        "history_delay_s",
        "caching",
        "sampler_step_s",
        "preview_method",
        "startup_delay_s",
        "startup_mode",
        "checkpoints",
        "max_history",
        "models",
        "nodes",
        "custom_nodes",
        "model_load_s",
        "max_upload_size",
        "upload_status",
    }
)
"""Options ``/fake/config`` may change on a running server."""
