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
from dataclasses import dataclass
from typing import Any

from supervisor.fakes.a1111.errors import OutOfMemoryError
from supervisor.fakes.a1111.params import GenerationRequest
from supervisor.fakes.a1111.state import SharedState
from supervisor.fakes.png import encode_solid_png, rgb_from_int

CONTROL_FAIL = "fleetq:fail"
CONTROL_OOM = "fleetq:oom"
CONTROL_HANG = "fleetq:hang"
MAX_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class Model:
    """The loaded checkpoint, from a title like ``v1-5-pruned-emaonly.safetensors [6ce0161689]``."""

    title: str

    @property
    def name(self) -> str:
        return self.title.split(" [")[0].rsplit(".", 1)[0]

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
    request: GenerationRequest, state: SharedState, step_seconds: float, fail: str | None
) -> float:
    """One batch; returns how far it got (1.0 = all steps)."""
    steps = int(request["steps"])
    hang = CONTROL_HANG in request["prompt"]
    for step in range(steps):
        if state.interrupted or state.skipped:
            return step / steps
        state.update(sampling_step=step)
        if fail is not None and step == steps // 2:
            raise _failure(fail)
        if hang and step == steps - 1:
            break
        if await state.sleep_unless_stopped(step_seconds):
            return step / steps
    else:
        if fail is not None:
            raise _failure(fail)
        if not hang:
            return 1.0
    await state.sleep_unless_stopped(None)
    return max(steps - 1, 0) / steps if steps else 0.0


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
) -> Generated:
    """Run the batches under the lock already held; raises for ``fleetq:fail``/``oom``."""
    width, height = request["width"], request["height"]
    if width < 1 or height < 1:
        raise RuntimeError(f"invalid image size {width}x{height}")
    if width * height > MAX_PIXELS:
        raise OutOfMemoryError(f"CUDA out of memory: {width}x{height} is too large (fake)")
    batch_size, n_iter = request["batch_size"], request["n_iter"]
    total = batch_size * n_iter
    seeds = _seeds(request["seed"], total)
    subseeds = _seeds(request["subseed"], total)
    prompt = request["prompt"]
    fail = next((c for c in (CONTROL_OOM, CONTROL_FAIL) if c in prompt), None)
    state.update(job_count=n_iter)
    made: list[tuple[int, float]] = []
    skipped = 0
    for batch in range(n_iter):
        state.consume_skip()
        if state.interrupted or state.stopping_generation:
            break
        if n_iter > 1:
            state.update(job=f"Batch {batch + 1} out of {n_iter}")
        state.update(sampling_steps=request["steps"], sampling_step=0)
        done = await _sample(request, state, step_seconds, fail if batch == 0 else None)
        skipped += int(state.skipped)
        made += [(batch * batch_size + index, done) for index in range(batch_size)]
        state.nextjob()
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


def info_json(info: dict[str, Any]) -> str:
    """``Processed.js()``: the ``info`` field is a JSON *string*."""
    return json.dumps(info, default=lambda _: None)
