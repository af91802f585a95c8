"""Settings of the fake AUTOMATIC1111: fixed at start, several of them switchable at run time."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from supervisor.sim.listener import STARTUP_MODES, StartupMode

ErrorShape = Literal["a1111", "forge", "forge-legacy"]
ERROR_SHAPES: tuple[ErrorShape, ...] = ("a1111", "forge", "forge-legacy")
DEFAULT_MODEL = "v1-5-pruned-emaonly.safetensors [6ce0161689]"
#: ``/sdapi/v1/scripts`` of a stock 1.10 install (lower-cased titles, as A1111 lists them):
#: the selectable scripts first, then the built-in always-on ones.
TXT2IMG_SCRIPTS = (
    "prompt matrix", "prompts from file or textbox", "x/y/z plot",
    "extra options", "hypertile", "refiner", "sampler", "seed",
)  # fmt: skip
IMG2IMG_SCRIPTS = (
    "img2img alternative test", "loopback", "outpainting mk2", "poor man's outpainting",
    "prompt matrix", "prompts from file or textbox", "sd upscale", "x/y/z plot",
    "extra options", "hypertile", "refiner", "sampler", "seed", "soft inpainting",
)  # fmt: skip


@dataclass(frozen=True)
class A1111Options:
    """Behaviour switches of one fake A1111 instance.

    Fields marked *runtime* may be changed on a running server with
    ``FakeA1111.configure(...)`` or ``POST /fake/config``.
    """

    step_seconds: float = 0.05
    """*runtime*: time per sampling step; a request runs ``n_iter * steps * step_seconds``."""
    error_shape: ErrorShape = "a1111"
    """*runtime*: ``"a1111"``: ``{"error", "detail", "body", "errors"}`` bodies and an
    ``X-Process-Time`` header; ``"forge"`` (Forge main): ``{"detail"}`` for HTTP errors and
    ``{"error", "detail", "body", "message"}`` for crashes; ``"forge-legacy"`` (Forge before
    late 2024): a plain-text 500 for crashes."""
    webui: bool = False
    """False is ``--nowebui`` (API only, no ``/internal/*``); True is ``--api`` with the UI,
    which adds ``/internal/ping``, ``/internal/progress`` and ``/``."""
    api_auth: str | None = None
    """``--api-auth "user:pass,user2:pass2"``: HTTP Basic on ``/sdapi/v1/*`` (Forge main
    included: only an unmerged branch leaves ``/sdapi/v1/progress`` open)."""
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    """*runtime*: checkpoint titles (``name.safetensors [hash]``); the first one is loaded."""
    loras: tuple[str, ...] = ()
    """*runtime*: files in ``models/Lora`` (``name.safetensors``), served by
    ``/sdapi/v1/loras`` (the built-in Lora extension's route)."""
    scripts: tuple[str, ...] = ()
    """*runtime*: extension scripts (``controlnet``, ``adetailer``, ...) listed by
    ``/sdapi/v1/scripts`` for both txt2img and img2img, after the stock ones."""
    model_load_s: float = 0.0
    """*runtime*: time loading a checkpoint takes, holding the queue lock: charged the first
    time a checkpoint is used and whenever a job (``override_settings.sd_model_checkpoint``,
    else the selected one) or ``POST /options`` needs another than the one loaded. During a
    job's switch progress shows ``job_count`` -1 and no steps."""
    startup_delay_s: float = 0.0
    """*runtime*: unreachable for this long after start and after each ``restart``."""
    startup_mode: StartupMode = "refuse"
    """*runtime*: ``"refuse"`` (port not listening yet) or ``"503"`` (every route answers 503)."""
    version: str = "v1.10.1"

    def __post_init__(self) -> None:
        for name in ("models", "loras", "scripts"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("loras", "scripts"):
            names = getattr(self, name)
            if not isinstance(names, tuple) or not all(isinstance(n, str) and n for n in names):
                raise ValueError(f"{name} must be a list of names")
        for name in ("step_seconds", "model_load_s", "startup_delay_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if self.error_shape not in ERROR_SHAPES:
            raise ValueError(f"error_shape must be one of {ERROR_SHAPES}")
        if self.startup_mode not in STARTUP_MODES:
            raise ValueError(f"startup_mode must be one of {STARTUP_MODES}")
        if not isinstance(self.webui, bool):
            raise ValueError("webui must be true or false")
        if (
            not isinstance(self.models, tuple)
            or not self.models
            or not all(isinstance(title, str) for title in self.models)
        ):
            raise ValueError("models must be a non-empty list of checkpoint titles")
        if self.api_auth is not None and (
            not isinstance(self.api_auth, str)
            or not all(":" in pair for pair in self.api_auth.split(","))
        ):
            raise ValueError('api_auth must look like "user:pass,user2:pass2"')

    def replace(self, **changes: Any) -> A1111Options:
        """A copy with ``changes`` applied; unknown names raise ``TypeError``."""
        return dataclasses.replace(self, **changes)

    def credentials(self) -> dict[str, str]:
        """``api_auth`` as user -> password."""
        if not self.api_auth:
            return {}
        pairs = (pair.split(":", 1) for pair in self.api_auth.split(","))
        return {user: password for user, password in pairs}


RUNTIME_FIELDS = frozenset(
    {
        "step_seconds",
        "error_shape",
        "models",
        "loras",
        "scripts",
        "model_load_s",
        "startup_delay_s",
        "startup_mode",
    }
)
"""Options ``/fake/config`` may change on a running server."""
