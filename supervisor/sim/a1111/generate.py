"""The fake sampler: steps that take time, interrupt/skip/hang/fail, images and ``info``.

Control through the prompt text (documented in the package docstring):

- ``fleetq:fail``: after ``steps // 2`` steps of the first batch, raise ``RuntimeError``
  (500 in the server's error shape).
- ``fleetq:oom``: the same with ``OutOfMemoryError`` (a CUDA out-of-memory).
- ``fleetq:hang``: every batch stops at its last step until ``/interrupt`` or ``/skip``.

Interrupt and skip behave as in A1111: the sampler returns its current latent, which is decoded
into a partly denoised image (here: a colour between grey and the final colour), so an
interrupted request still answers 200 with the images made so far; an interrupt also skips
later batches, a skip only the current one.
"""

from __future__ import annotations

import base64
import json
import math
import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from supervisor.sim.a1111.errors import OutOfMemoryError
from supervisor.sim.a1111.params import GenerationRequest
from supervisor.sim.a1111.state import Latent, SharedState
from supervisor.sim.png import encode_solid_png, rgb_from_int

CONTROL_FAIL = "fleetq:fail"
CONTROL_OOM = "fleetq:oom"
CONTROL_HANG = "fleetq:hang"
MAX_PIXELS = 8192 * 8192
#: ``hr_upscaler`` names the fake knows (A1111's latent modes and built-in upscalers).
UPSCALERS = frozenset(
    {"Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
     "Latent (nearest)", "Latent (nearest-exact)", "None", "Lanczos", "Nearest", "ESRGAN_4x",
     "R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B", "SwinIR 4x", "LDSR", "ScuNET"}
)  # fmt: skip


@dataclass(frozen=True)
class Model:
    """The loaded checkpoint, from a title like ``v1-5-pruned-emaonly.safetensors [6ce0161689]``."""

    title: str

    @property
    def name(self) -> str:
        """A1111's ``model_name``: the file name without extension, folders joined by ``_``."""
        filename = self.title.split(" [")[0].replace("/", "_").replace("\\", "_")
        return filename.rsplit(".", 1)[0]

    @property
    def hash(self) -> str:
        return self.title.rsplit("[", 1)[1].rstrip("]") if "[" in self.title else ""


@dataclass
class Generated:
    """Response material: base64 PNGs (grid first when there is one) and the ``info`` object."""

    images: list[str]
    info: dict[str, Any]
    interrupted: bool
    skipped_batches: int


def _color(prompt: str, seed: int, done: float) -> tuple[int, int, int]:
    final = rgb_from_int(zlib.crc32(f"{prompt}|{seed}".encode()) & 0xFFFFFF)
    return tuple(round(128 + (channel - 128) * done) for channel in final)  # type: ignore[return-value]


def infotext(
    request: GenerationRequest, model: Model, version: str, seed: int, position: int
) -> str:
    """The generation-parameters text A1111 writes into each PNG and into ``infotexts``."""
    lines = [request["prompt"]]
    if request["negative_prompt"]:
        lines.append(f"Negative prompt: {request['negative_prompt']}")
    fields: list[tuple[str, Any]] = [
        ("Steps", request["steps"]),
        ("Sampler", request.sampler),
        ("Schedule type", request.scheduler),
        ("CFG scale", request["cfg_scale"]),
        ("Seed", seed),
        ("Size", f"{request['width']}x{request['height']}"),
        ("Model hash", model.hash),
        ("Model", model.name),
    ]
    if request["batch_size"] > 1:
        fields += [("Batch size", request["batch_size"]), ("Batch pos", position)]
    if request.kind == "img2img":
        fields.append(("Denoising strength", request["denoising_strength"]))
    fields.append(("Version", version))
    lines.append(", ".join(f"{key}: {value}" for key, value in fields))
    return "\n".join(lines)


async def _sample(
    steps: int,
    prompt: str,
    state: SharedState,
    step_seconds: float,
    fail: str | None,
    latent: Callable[[float], Latent],
) -> float:
    """One sampling pass; returns how far it got (1.0 = all steps). ``sampling_step`` counts
    the finished steps, set after each one with the latent so far (``sd_samplers_common``;
    the progress endpoint decodes it into the live preview)."""
    hang = CONTROL_HANG in prompt
    for step in range(steps):
        if state.interrupted or state.skipped:
            return step / steps
        if fail is not None and step == steps // 2:
            raise _failure(fail)
        if hang and step == steps - 1:
            await state.sleep_unless_stopped(None)
            return step / steps
        if await state.sleep_unless_stopped(step_seconds):
            return step / steps
        state.update(sampling_step=step + 1, current_latent=latent((step + 1) / steps))
    if fail is not None:
        raise _failure(fail)
    return 1.0


def sampling_steps(request: GenerationRequest, settings: Mapping[str, Any]) -> int:
    """Steps the sampler really runs: img2img runs ``int(denoising_strength * steps) + 1``
    (``setup_img2img_steps``) unless ``img2img_fix_steps``."""
    steps = int(request["steps"])
    if request.kind != "img2img" or settings.get("img2img_fix_steps"):
        return steps
    strength = request["denoising_strength"] or 0.0
    return int(min(strength, 0.999) * steps) + 1 if steps else 0


def _failure(control: str) -> Exception:
    if control == CONTROL_OOM:
        return OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
            "23.65 GiB of which 1.02 GiB is free. (fleetq:oom)"
        )
    return RuntimeError("fleetq:fail requested by the prompt")


def _seeds(value: int, count: int) -> list[int]:
    seed = random.randint(0, 2**32 - 1) if value == -1 else value
    return [seed + index for index in range(count)]


async def generate(
    request: GenerationRequest,
    state: SharedState,
    step_seconds: float,
    model: Model,
    version: str,
    settings: Mapping[str, Any] | None = None,
) -> Generated:
    """Run the batches under the lock already held; raises for ``fleetq:fail``/``oom``.

    ``settings`` are the options in force (with the request's ``override_settings``). With
    hires fix every batch has a second pass (``job_count`` doubled, ``hr_second_pass_steps``
    or ``steps`` more steps, the image ``hr_scale`` times larger).
    """
    settings = settings or {}
    width, height = request["width"], request["height"]
    if width < 1 or height < 1:
        raise RuntimeError(f"invalid image size {width}x{height}")
    if width * height > MAX_PIXELS:
        raise OutOfMemoryError(f"CUDA out of memory: {width}x{height} is too large (fake)")
    hires = request.kind == "txt2img" and bool(request["enable_hr"])
    if hires:
        upscaler = request["hr_upscaler"]
        if upscaler is not None and upscaler not in UPSCALERS:
            raise AssertionError(f"could not find upscaler named {upscaler}")
        scale = request["hr_scale"] or 2.0
        width, height = int(width * scale), int(height * scale)
    batch_size, n_iter = request["batch_size"], request["n_iter"]
    total = batch_size * n_iter
    seeds = _seeds(request["seed"], total)
    subseeds = _seeds(request["subseed"], total)
    prompt = request["prompt"]
    fail = next((c for c in (CONTROL_OOM, CONTROL_FAIL) if c in prompt), None)
    passes = [sampling_steps(request, settings)]
    if hires:
        passes.append(request["hr_second_pass_steps"] or request["steps"])
    state.update(job_count=n_iter * len(passes))
    made: list[tuple[int, float]] = []
    skipped = 0
    for batch in range(n_iter):
        state.consume_skip()
        if state.interrupted or state.stopping_generation:
            break
        if n_iter > 1:
            state.update(job=f"Batch {batch + 1} out of {n_iter}")
        done = 0.0
        for number, steps in enumerate(passes):
            if number and (state.interrupted or state.skipped):
                state.nextjob()
                continue
            state.update(sampling_steps=steps, sampling_step=0)
            failing = fail if batch == 0 and number == 0 else None
            seed = seeds[batch * batch_size]

            def latent(done: float, seed: int = seed) -> Latent:
                # "Approx cheap" previews: the latent's size, an eighth of the image's.
                return max(1, width // 8), max(1, height // 8), _color(prompt, seed, done)

            done = await _sample(steps, prompt, state, step_seconds, failing, latent)
            state.nextjob()
        skipped += int(state.skipped)
        made += [(batch * batch_size + index, done) for index in range(batch_size)]
    texts = [infotext(request, model, version, seeds[i], i % batch_size) for i, _ in made]
    pngs = [
        encode_solid_png(width, height, _color(prompt, seeds[i], done), {"parameters": text})
        for (i, done), text in zip(made, texts, strict=True)
    ]
    index_of_first_image = 0
    if request["save_images"] and len(pngs) > 1:
        rows = min(len(pngs), max(1, round(math.sqrt(len(pngs)))))
        cols = math.ceil(len(pngs) / rows)
        grid_text = texts[0]
        grid = encode_solid_png(
            cols * width, rows * height, _color(prompt, seeds[0], made[0][1]),
            {"parameters": grid_text},
        )  # fmt: skip
        pngs.insert(0, grid)
        texts.insert(0, grid_text)
        index_of_first_image = 1
    pngs += _extra_images(request, settings, width, height)
    info = {
        "prompt": prompt,
        "all_prompts": [prompt] * total,
        "negative_prompt": request["negative_prompt"],
        "all_negative_prompts": [request["negative_prompt"]] * total,
        "seed": seeds[0],
        "all_seeds": seeds,
        "subseed": subseeds[0],
        "all_subseeds": subseeds,
        "subseed_strength": request["subseed_strength"],
        "width": width,
        "height": height,
        "sampler_name": request.sampler,
        "cfg_scale": request["cfg_scale"],
        "steps": request["steps"],
        "batch_size": batch_size,
        "restore_faces": request["restore_faces"],
        "face_restoration_model": None,
        "sd_model_name": model.name,
        "sd_model_hash": model.hash,
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": request["seed_resize_from_w"],
        "seed_resize_from_h": request["seed_resize_from_h"],
        "denoising_strength": request["denoising_strength"],
        "extra_generation_params": {"Schedule type": request.scheduler},
        "index_of_first_image": index_of_first_image,
        "infotexts": texts,
        "styles": request["styles"] or [],
        "job_timestamp": state.job_timestamp,
        "clip_skip": 1,
        "is_using_inpainting_conditioning": False,
        "version": version,
    }
    images = [base64.b64encode(png).decode("ascii") for png in pngs]
    if not request["send_images"]:
        images = []
    return Generated(images, info, state.interrupted, skipped)


def _extra_images(
    request: GenerationRequest, settings: Mapping[str, Any], width: int, height: int
) -> list[bytes]:
    """What A1111 and its extensions append after the generated images: the img2img mask
    (``return_mask``, ``return_mask_composite``) and one ControlNet detect map per enabled
    unit (unless ``control_net_no_detectmap``); Forge returns the same as ``extra_images``."""
    extras: list[bytes] = []
    if request.kind == "img2img" and request["mask"]:
        for option in ("return_mask", "return_mask_composite"):
            if settings.get(option):
                extras.append(encode_solid_png(width, height, (255, 255, 255)))
    scripts = request["alwayson_scripts"]
    if isinstance(scripts, Mapping) and not settings.get("control_net_no_detectmap"):
        for name, script in scripts.items():
            if name.lower() != "controlnet" or not isinstance(script, Mapping):
                continue
            units = script.get("args")
            for unit in units if isinstance(units, list) else []:
                if isinstance(unit, Mapping) and unit.get("enabled", True) is not False:
                    extras.append(encode_solid_png(width, height, (0, 0, 0)))
    return extras


def info_json(info: dict[str, Any]) -> str:
    """``Processed.js()``: the ``info`` field is a JSON *string*."""
    return json.dumps(info, default=lambda _: None)
