"""How to read A1111's (and Forge's) answers: error bodies, which of the returned images are
the generated ones, the checkpoint a job really ran on, and the progress state.

Pure functions over parsed JSON, so the adapter (:mod:`.a1111`) keeps only the flow of a run.
Facts from A1111 1.10 (``modules/api/api.py``, ``modules/processing.py``) and Forge main.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"GIF8", "image/gif", "gif"),
)

#: Messages of 500s that are errors of the request, not of the GPU: retrying cannot help.
#: (HTTPException 500 in ``api.py`` for images and URLs, the upscaler assertion and the
#: image-count RuntimeError in ``processing.py``.)
REQUEST_ERROR_MESSAGES = (
    "invalid encoded image",
    "invalid image url",
    "requests not allowed",
    "could not find upscaler",
    "bad number of images passed",
    "init image not found",
)


class Malformed(Exception):
    """An answer that does not have A1111's shape."""


def sniff(data: bytes) -> tuple[str, str]:
    """``(content_type, extension)`` of an image from its first bytes."""
    for magic, content_type, extension in _MAGIC:
        if data.startswith(magic):
            return content_type, extension
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return "application/octet-stream", "bin"


def error_text(body: Any) -> tuple[str | None, str]:
    """``(error type, message)`` of an error body: A1111's ``{error, detail, body, errors}``,
    Forge's ``{detail}`` (HTTP errors) or ``{error, detail, body, message}`` (crashes, since
    late 2024), or FastAPI's 422 ``{detail: [...]}``."""
    if not isinstance(body, Mapping):
        return None, ""
    error = body.get("error")
    detail = body.get("detail")
    if isinstance(detail, list):  # FastAPI 422: [{"loc": [...], "msg": ..., "type": ...}]
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        detail = "; ".join(parts)
    message = str(detail or body.get("errors") or body.get("message") or "")
    return (str(error) if error else None), message


def is_request_error(message: str) -> bool:
    """Does a 500's message say the request itself is wrong?"""
    lowered = message.lower()
    return any(fragment in lowered for fragment in REQUEST_ERROR_MESSAGES)


def parse_info(body: Mapping[str, Any]) -> Any:
    """``info`` of a generation answer: a JSON *string* (``Processed.js()``), parsed."""
    info = body.get("info")
    if isinstance(info, str):
        with contextlib.suppress(ValueError):
            info = json.loads(info)
    return info


def decode_image(n: int, item: Any) -> bytes:
    """One entry of ``images``: base64, possibly as a ``data:`` URL."""
    if not isinstance(item, str):
        raise Malformed(f"image {n} is not a base64 string")
    encoded = item.split(",", 1)[1] if item.startswith("data:") else item
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as e:
        raise Malformed(f"image {n} is not valid base64") from e


@dataclass(frozen=True)
class Image:
    """One returned image with its role: ``"image"`` (generated, with its seed), ``"grid"``
    (before the first image) or ``"extra"`` (masks, ControlNet detect maps, Forge's
    ``extra_images``: after the generated ones)."""

    position: int
    role: str
    seed: int | None = None


def classify_images(count: int, info: Any) -> list[Image]:
    """Tell the generated images from the extras among ``count`` returned images.

    A1111 puts a grid first (``save_images`` with several images; ``index_of_first_image`` 1)
    and appends masks, detect maps and Forge's ``extra_images`` after the ``batch_size *
    n_iter`` generated ones, one seed each in ``all_seeds``. Without a usable ``info`` every
    image counts as generated.
    """
    if not isinstance(info, Mapping):
        return [Image(n, "image") for n in range(count)]
    first = info.get("index_of_first_image")
    first = first if isinstance(first, int) and not isinstance(first, bool) else 0
    first = min(max(first, 0), count)
    seeds = info.get("all_seeds")
    if not isinstance(seeds, Sequence) or isinstance(seeds, str) or not seeds:
        seeds = [info.get("seed")] * (count - first)
    generated = min(len(seeds), count - first)
    images = [Image(n, "grid") for n in range(first)]
    for k in range(generated):
        seed = seeds[k]
        usable = isinstance(seed, int) and not isinstance(seed, bool)
        images.append(Image(first + k, "image", seed if usable else None))
    images += [Image(n, "extra") for n in range(first + generated, count)]
    return images


def requested_checkpoint(workflow: Mapping[str, Any]) -> str | None:
    """``override_settings.sd_model_checkpoint`` of a request body, if any."""
    overrides = workflow.get("override_settings")
    if not isinstance(overrides, Mapping):
        return None
    wanted = overrides.get("sd_model_checkpoint")
    return wanted if isinstance(wanted, str) and wanted.strip() else None


def _name_and_hash(checkpoint: str) -> tuple[str, str | None]:
    """``("sub_name", "6ce0161689")`` from a title ``sub/name.safetensors [6ce0161689]``, a
    file name or a model name (A1111's ``model_name``: no extension, folders as ``_``)."""
    text, found_hash = checkpoint.strip(), None
    if text.endswith("]") and " [" in text:
        text, _, tail = text.rpartition(" [")
        found_hash = tail[:-1].lower() or None
    for extension in (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf"):
        if text.lower().endswith(extension):
            text = text[: -len(extension)]
            break
    return text.replace("\\", "_").replace("/", "_"), found_hash


def checkpoint_mismatch(wanted: str, info: Any) -> str | None:
    """Why ``info`` shows the job did not run on the checkpoint ``wanted`` (None: it did, or
    ``info`` does not say). A1111 and Forge silently drop an unknown checkpoint."""
    if not isinstance(info, Mapping):
        return None
    ran_name, ran_hash = info.get("sd_model_name"), info.get("sd_model_hash")
    if not isinstance(ran_name, str) and not isinstance(ran_hash, str):
        return None
    name, wanted_hash = _name_and_hash(wanted)
    ran_name = ran_name if isinstance(ran_name, str) else ""
    ran_hash = ran_hash.lower() if isinstance(ran_hash, str) else ""
    if wanted_hash and ran_hash and (ran_hash.startswith(wanted_hash) or
                                     wanted_hash.startswith(ran_hash)):  # fmt: skip
        return None
    if not wanted_hash and name and name in (ran_name, ran_hash):
        return None
    if wanted_hash and not ran_hash and name == ran_name:
        return None
    ran = f"{ran_name} [{ran_hash}]" if ran_hash else ran_name
    return (
        f"checkpoint {wanted!r} is not available on this server: it ignored the request and "
        f"ran on {ran}"
    )


def progress_point(data: Any, *, hires: bool = False) -> tuple[float, str] | None:
    """``(fraction, text)`` from a ``/sdapi/v1/progress`` answer; None while idle/starting.

    The fraction is ``(job_no + sampling_step / sampling_steps) / job_count``. The text is
    ``"step 12/30"`` plus ``" batch 2/4"`` for several batches. With hires fix A1111 counts
    every batch twice (a first pass and a hires pass, ``job_count`` doubled), so the text says
    ``" hires"`` for the second pass instead of showing a second batch.
    """
    state = data.get("state") if isinstance(data, Mapping) else None
    if not isinstance(state, Mapping):
        return None
    job_count, job_no = state.get("job_count"), state.get("job_no")
    step, steps = state.get("sampling_step"), state.get("sampling_steps")
    numbers = (job_count, job_no, step, steps)
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        return None
    assert isinstance(job_count, int) and isinstance(job_no, int)
    assert isinstance(step, int) and isinstance(steps, int)
    if job_count <= 0 or steps <= 0:
        return None
    fraction = min(0.99, max(0.0, (job_no + min(step, steps) / steps) / job_count))
    text = f"step {min(step, steps)}/{steps}"
    passes = 2 if hires and job_count % 2 == 0 else 1
    batches, batch = job_count // passes, min(job_no // passes + 1, job_count // passes)
    if batches > 1:
        text += f" batch {batch}/{batches}"
    if passes == 2 and job_no % 2 == 1:
        text += " hires"
    return fraction, text


def current_image(data: Any) -> tuple[bytes, str] | None:
    """The live preview in a ``/sdapi/v1/progress?skip_current_image=false`` answer: ``(image
    bytes, content type)``, or None when there is none (previews off, idle, Forge's frequent
    null) or it is not a base64 image (a preview must never break a run)."""
    item = data.get("current_image") if isinstance(data, Mapping) else None
    if not isinstance(item, str) or not item:
        return None
    try:
        image = decode_image(0, item)
    except Malformed:
        return None
    content_type, _ = sniff(image)
    if content_type == "application/octet-stream":
        return None
    return image, content_type
