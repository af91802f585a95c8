"""Deliver a job's input files to ComfyUI: upload each into a per-job subfolder of the instance's
input folder, then point the workflow's loaders at it.

``POST /upload/image`` (multipart: ``image`` the file, ``subfolder``, ``type=input``,
``overwrite=true``) answers ``{"name", "subfolder", "type"}``; ``LoadImage`` and
``LoadImageMask`` then take ``subfolder/name`` as their ``image``. Every job uploads into
``fleetq/<job id>``, so two jobs that both carry a ``photo.png`` never see each other's file,
and a requeued job landing on the same instance overwrites its own earlier upload.

Masks go through ``/upload/image`` too: ``LoadImageMask`` reads a channel of a plain file.
(``/upload/mask`` is the mask editor's call: it writes the mask into the alpha channel of
another, already uploaded image, and writes nothing when that image is missing.)

When the adapter knows the instance's input folder (the ``input_dir`` option), the job's
subfolder is removed after the job; otherwise the files stay in ``input/fleetq/``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from fleetq.inputs import comfyui_slots, sniff_content_type
from fleetq.model import FaultKind, JobError

from .base import BackendUnavailable, InputFiles, JobRejected
from .comfyui_http import ComfyHttp, Unreachable

log = logging.getLogger(__name__)

#: The folder under the instance's ``input/`` that holds the uploads of every job.
UPLOAD_ROOT = "fleetq"
_JOB_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def job_subfolder(job_id: str) -> str:
    """The subfolder (of ``input/``) that holds one job's uploads."""
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return f"{UPLOAD_ROOT}/{job_id}"


async def deliver(
    http: ComfyHttp,
    job_id: str,
    graph: Mapping[str, Any],
    inputs: InputFiles,
    timeout_s: float,
) -> dict[str, Any]:
    """Upload the files the graph's loaders name; return the graph with those names rewritten.

    Raises :class:`BackendUnavailable` when an upload cannot reach ComfyUI or it fails on its
    side (5xx): the job is requeued without a charge. A 4xx (ComfyUI refused the file, e.g.
    over its ``--max-upload-size``) is :class:`JobRejected` with ComfyUI's answer.
    """
    rewritten = copy.deepcopy(dict(graph))
    slots = [slot for slot in comfyui_slots(rewritten) if slot.value in inputs]
    subfolder = job_subfolder(job_id)
    stored: dict[str, str] = {}
    for name in dict.fromkeys(slot.value for slot in slots):
        stored[name] = await upload(http, name, inputs[name], subfolder, timeout_s)
    for slot in slots:
        slot.set(f"{subfolder}/{stored[slot.value]}")
    if stored:
        log.info("job %s: uploaded %d input(s) to input/%s", job_id, len(stored), subfolder)
    return rewritten


async def upload(http: ComfyHttp, name: str, data: bytes, subfolder: str, timeout_s: float) -> str:
    """``POST /upload/image`` of one file; returns the name ComfyUI stored it under."""
    form = aiohttp.FormData()
    content_type = sniff_content_type(data) or "application/octet-stream"
    form.add_field("image", data, filename=name, content_type=content_type)
    form.add_field("subfolder", subfolder)
    form.add_field("type", "input")
    form.add_field("overwrite", "true")
    try:
        answer = await http.call("POST", "/upload/image", timeout_s, form=form)
    except Unreachable as e:
        raise BackendUnavailable(f"uploading input {name!r}: {e}") from e
    if 400 <= answer.status < 500:
        reason = answer.body[:200].decode("utf-8", "replace") or "(no reason given)"
        message = f"ComfyUI refused input {name!r}: HTTP {answer.status} {reason}"
        raise JobRejected(JobError("InputRefused", message, kind=FaultKind.FINAL))
    if answer.status != 200:
        raise BackendUnavailable(f"uploading input {name!r}: HTTP {answer.status}")
    body = answer.parsed()
    stored = body.get("name") if isinstance(body, dict) else None
    if not isinstance(stored, str) or not stored or "/" in stored or "\\" in stored:
        raise BackendUnavailable(
            f"uploading input {name!r}: malformed answer {answer.body[:120]!r}"
        )
    return stored


async def remove_uploads(input_dir: str, job_id: str) -> None:
    """Delete one job's upload folder under ``input_dir``; failures are only logged."""
    folder = Path(input_dir) / job_subfolder(job_id)

    def remove() -> None:
        shutil.rmtree(folder, ignore_errors=False)

    try:
        await asyncio.to_thread(remove)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("job %s: could not remove its uploads in %s: %s", job_id, folder, e)
