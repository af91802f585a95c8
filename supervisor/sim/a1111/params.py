"""Request models of ``/sdapi/v1/txt2img`` and ``/img2img``: defaults, pydantic-v1 style
coercion and 422 errors, sampler lookup, and the ``parameters`` echo.

Unknown fields are ignored (pydantic v1 default). ``null`` for a field means its default
(the real server would often crash later instead).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal

from supervisor.sim.a1111.errors import ApiError, RequestValidationError
from supervisor.sim.png import PNG_SIGNATURE, png_size

Kind = Literal["txt2img", "img2img"]

SAMPLERS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "DPM++ 2M": (["k_dpmpp_2m"], {"scheduler": "karras"}),
    "DPM++ SDE": (["k_dpmpp_sde"], {"scheduler": "karras", "second_order": True}),
    "DPM++ 2M SDE": (["k_dpmpp_2m_sde"], {"scheduler": "exponential", "brownian_noise": True}),
    "DPM++ 2S a": (["k_dpmpp_2s_a"], {"scheduler": "karras", "uses_ensd": True}),
    "Euler a": (["k_euler_a", "k_euler_ancestral"], {"uses_ensd": True}),
    "Euler": (["k_euler"], {}),
    "LMS": (["k_lms"], {}),
    "Heun": (["k_heun"], {"second_order": True}),
    "DPM2": (["k_dpm_2"], {"discard_next_to_last_sigma": True, "second_order": True}),
    "DPM2 a": (["k_dpm_2_a"], {"discard_next_to_last_sigma": True, "uses_ensd": True}),
    "DPM fast": (["k_dpm_fast"], {"uses_ensd": True}),
    "DPM adaptive": (["k_dpm_ad"], {"uses_ensd": True}),
    "Restart": (["restart"], {"scheduler": "karras", "second_order": True}),
    "DDIM": (["ddim"], {}),
    "PLMS": (["plms"], {}),
    "UniPC": (["unipc"], {}),
    "LCM": (["k_lcm"], {}),
}
SCHEDULERS: list[tuple[str, str]] = [
    ("automatic", "Automatic"),
    ("uniform", "Uniform"),
    ("karras", "Karras"),
    ("exponential", "Exponential"),
    ("polyexponential", "Polyexponential"),
    ("sgm_uniform", "SGM Uniform"),
    ("kl_optimal", "KL Optimal"),
    ("align_your_steps", "Align Your Steps"),
    ("simple", "Simple"),
    ("normal", "Normal"),
    ("ddim", "DDIM"),
    ("beta", "Beta"),
]

_COMMON_DEFAULTS: dict[str, Any] = {
    "prompt": "",
    "negative_prompt": "",
    "styles": None,
    "seed": -1,
    "subseed": -1,
    "subseed_strength": 0,
    "seed_resize_from_h": -1,
    "seed_resize_from_w": -1,
    "sampler_name": None,
    "scheduler": None,
    "batch_size": 1,
    "n_iter": 1,
    "steps": 50,
    "cfg_scale": 7.0,
    "width": 512,
    "height": 512,
    "restore_faces": None,
    "tiling": None,
    "do_not_save_samples": False,
    "do_not_save_grid": False,
    "eta": None,
    "denoising_strength": None,
    "s_min_uncond": None,
    "s_churn": None,
    "s_tmax": None,
    "s_tmin": None,
    "s_noise": None,
    "override_settings": None,
    "override_settings_restore_afterwards": True,
    "refiner_checkpoint": None,
    "refiner_switch_at": None,
    "disable_extra_networks": False,
    "firstpass_image": None,
    "comments": None,
}
_TXT2IMG_DEFAULTS: dict[str, Any] = {
    **_COMMON_DEFAULTS,
    "enable_hr": False,
    "firstphase_width": 0,
    "firstphase_height": 0,
    "hr_scale": 2.0,
    "hr_upscaler": None,
    "hr_second_pass_steps": 0,
    "hr_resize_x": 0,
    "hr_resize_y": 0,
    "hr_checkpoint_name": None,
    "hr_sampler_name": None,
    "hr_scheduler": None,
    "hr_prompt": "",
    "hr_negative_prompt": "",
}
_IMG2IMG_DEFAULTS: dict[str, Any] = {
    "init_images": None,
    "resize_mode": 0,
    "image_cfg_scale": None,
    "mask": None,
    "mask_blur_x": 4,
    "mask_blur_y": 4,
    "mask_blur": None,
    "mask_round": True,
    "inpainting_fill": 0,
    "inpaint_full_res": True,
    "inpaint_full_res_padding": 0,
    "inpainting_mask_invert": 0,
    "initial_noise_multiplier": None,
    "latent_mask": None,
    **_COMMON_DEFAULTS,
    "denoising_strength": 0.75,
}
_API_EXTRAS: dict[str, Any] = {
    "force_task_id": None,
    "sampler_index": "Euler",
    "script_name": None,
    "script_args": [],
    "send_images": True,
    "save_images": False,
    "alwayson_scripts": {},
    "infotext": None,
}
_IMG2IMG_EXTRAS: dict[str, Any] = {"include_init_images": False}

_INT_FIELDS = {
    "seed", "subseed", "seed_resize_from_h", "seed_resize_from_w", "batch_size", "n_iter",
    "steps", "width", "height", "firstphase_width", "firstphase_height",
    "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "resize_mode", "mask_blur_x",
    "mask_blur_y", "mask_blur", "inpainting_fill", "inpaint_full_res_padding",
    "inpainting_mask_invert",
}  # fmt: skip
_FLOAT_FIELDS = {
    "subseed_strength", "cfg_scale", "denoising_strength", "hr_scale", "eta",
    "s_min_uncond", "s_churn", "s_tmax", "s_tmin", "s_noise", "refiner_switch_at",
    "image_cfg_scale", "initial_noise_multiplier",
}  # fmt: skip
_BOOL_FIELDS = {
    "restore_faces", "tiling", "do_not_save_samples", "do_not_save_grid", "enable_hr",
    "override_settings_restore_afterwards", "disable_extra_networks", "mask_round",
    "inpaint_full_res", "send_images", "save_images", "include_init_images",
}  # fmt: skip
_STR_FIELDS = {
    "prompt", "negative_prompt", "sampler_name", "scheduler", "hr_upscaler", "hr_prompt",
    "hr_negative_prompt", "hr_checkpoint_name", "hr_sampler_name", "hr_scheduler",
    "refiner_checkpoint", "force_task_id", "sampler_index", "script_name", "infotext",
    "comments",
}  # fmt: skip
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


def defaults(kind: Kind) -> dict[str, Any]:
    """Every field of the request model with its default, in the model's order."""
    if kind == "txt2img":
        return {**_TXT2IMG_DEFAULTS, **_API_EXTRAS}
    return {**_IMG2IMG_DEFAULTS, **_API_EXTRAS, **_IMG2IMG_EXTRAS}


def _coerce(name: str, value: Any) -> Any:
    """Pydantic v1 coercion; raises ``ValueError`` with pydantic's (msg, type) pair."""
    if value is None:
        return None
    if name in _INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("value is not a valid integer", "type_error.integer")
        try:
            return int(value) if not isinstance(value, str) else int(value.strip())
        except ValueError:
            raise ValueError("value is not a valid integer", "type_error.integer") from None
    if name in _FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("value is not a valid float", "type_error.float")
        try:
            return float(value)
        except ValueError:
            raise ValueError("value is not a valid float", "type_error.float") from None
    if name in _BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError("value could not be parsed to a boolean", "type_error.bool")
    if name in _STR_FIELDS:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError("str type expected", "type_error.str")
    return value


@dataclass
class GenerationRequest:
    """A validated txt2img/img2img request."""

    kind: Kind
    parameters: dict[str, Any]
    """The echo returned as ``parameters``: every model field, defaults filled in."""
    sampler: str = "Euler"
    scheduler: str = "Automatic"
    values: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def resolve_sampler(name: str | None, scheduler: str | None) -> tuple[str, str]:
    """``get_sampler_and_scheduler`` + ``validate_sampler_name``: ``"DPM++ 2M Karras"`` is
    sampler ``DPM++ 2M`` with scheduler ``Karras``; an unknown sampler is a 400."""
    found = next((label for key, label in SCHEDULERS if scheduler in (key, label)), "Automatic")
    sampler = name or "Euler"
    for key, label in SCHEDULERS:
        if sampler.endswith(" " + label) or sampler.endswith(" " + key):
            found = label
            sampler = sampler[: -len(label) - 1]
            break
    for known, (aliases, _) in SAMPLERS.items():
        if sampler == known or sampler in aliases:
            return known, found
    raise ApiError(400, "Sampler not found")


_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8", b"RIFF")


def decode_image(encoding: Any) -> bytes:
    """``api.decode_base64_to_image``: URLs are fetched (the fake cannot: "Invalid image url"),
    ``data:`` URLs and plain base64 decoded; bad base64, or bytes that are no image (by their
    signature; a PNG also by its header chunk), is a 500
    HTTPException "Invalid encoded image" (a request error, though a 500)."""
    if isinstance(encoding, str) and encoding.startswith(("http://", "https://")):
        raise ApiError(500, "Invalid image url")
    try:
        assert isinstance(encoding, str)
        if encoding.startswith("data:image/"):
            encoding = encoding.split(";")[1].split(",")[1]
        data = base64.b64decode(encoding)
        assert data.startswith(_IMAGE_MAGIC)
        if data.startswith(PNG_SIGNATURE):
            png_size(data)  # Pillow reads the header chunk when it opens the file
    except Exception:
        raise ApiError(500, "Invalid encoded image") from None
    return data


def parse_request(body: Any, kind: Kind) -> GenerationRequest:
    """Validate a request body as FastAPI would (422 on type errors, 400 on a bad sampler,
    404 when img2img has no ``init_images``)."""
    if not isinstance(body, dict):
        raise RequestValidationError(
            [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]
        )
    values = defaults(kind)
    errors: list[dict[str, Any]] = []
    for name, value in body.items():
        if name not in values:
            continue
        try:
            coerced = _coerce(name, value)
        except ValueError as ex:
            message, error_type = ex.args
            errors.append({"loc": ["body", name], "msg": message, "type": error_type})
            continue
        if coerced is not None or values[name] is None:
            values[name] = coerced
    if errors:
        raise RequestValidationError(errors)
    parameters = dict(values)
    sampler, scheduler = resolve_sampler(
        values["sampler_name"] or values["sampler_index"], values["scheduler"]
    )
    if kind == "img2img":
        if values["init_images"] is None:
            raise ApiError(404, "Init image not found")
        images = values["init_images"] if isinstance(values["init_images"], list) else []
        for image in [*images, *([values["mask"]] if values["mask"] else [])]:
            decode_image(image)
        if not images:  # processing.py: only None is "not found"; [] fails in init()
            raise RuntimeError(f"bad number of images passed: 0; expecting {values['batch_size']}"
                               " or less")  # fmt: skip
        if not values["include_init_images"]:
            parameters["init_images"] = None
            parameters["mask"] = None
    return GenerationRequest(kind, parameters, sampler, scheduler, values)
