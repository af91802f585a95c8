"""The body of a submit with input files, in either of its two forms.

- ``application/json``: the submit object, with ``inputs`` mapping each file name to its bytes
  in base64 (a ``data:`` URL is accepted too).
- ``multipart/form-data``: a part named ``job`` holding the submit object as JSON (without
  ``inputs``), and one part named ``inputs`` per file, whose file name is the input's name
  (``curl -F job=@job.json -F inputs=@photo.png``).

Both end in the same ``(submit object, {name: bytes})``; names, types, sizes and references
are checked by the core (:func:`fleetq.inputs.check_inputs`) before anything is written.
A browser can send a multipart form from any web site, so this path relies on the guard
(:mod:`fleetq.gateway.guard`): a write that carries a foreign ``Origin`` is refused first.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from fleetq.errors import InvalidArgument, InvalidInput, PayloadTooLarge, ValidationError
from fleetq.gateway.jsonio import BODY_CAP, BodyTimeout, MalformedJSON, read_object
from fleetq.gateway.state import OPTIONS
from fleetq.inputs import MAX_INPUT_FILES

JOB_PART = "job"
INPUT_PART = "inputs"
#: Largest ``job`` part (the workflow and its fields), on top of the core's payload cap.
_JOB_PART_SLACK = 1024 * 1024


class MalformedMultipart(ValidationError):
    """The multipart body cannot be parsed (no boundary, broken part headers)."""


async def read_submit(request: web.Request, max_payload_bytes: int) -> tuple[dict[str, Any], Any]:
    """The submit object and its inputs (``None`` when it has none)."""
    if request.content_type == "multipart/form-data":
        timeout_s = request.app[OPTIONS].body_timeout_s
        reading = _read_multipart(request, max_payload_bytes, _Budget(request.app[BODY_CAP]))
        try:
            return await asyncio.wait_for(reading, timeout_s)
        except asyncio.TimeoutError as e:
            raise BodyTimeout(f"the request body did not arrive within {timeout_s:g} s") from e
        except (ValueError, HttpProcessingError) as e:  # bad boundary, broken part headers
            raise MalformedMultipart(f"the multipart body cannot be read: {e}") from e
    body = await read_object(request)
    return body, decode_base64_inputs(body.pop("inputs", None))


def decode_base64_inputs(raw: Any) -> dict[str, bytes] | None:
    """``{"photo.png": "<base64>"}`` as bytes; a clear error for anything else."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidInput("inputs must be an object mapping file names to base64 strings")
    if len(raw) > MAX_INPUT_FILES:
        raise InvalidInput(f"a job carries at most {MAX_INPUT_FILES} input files, not {len(raw)}")
    files: dict[str, bytes] = {}
    for name, encoded in raw.items():
        if not isinstance(encoded, str):
            raise InvalidInput(f"inputs[{name[:80]!r}] must be a base64 string")
        if encoded.startswith("data:"):
            _, sep, encoded = encoded.partition(";base64,")
            if not sep:
                raise InvalidInput(f"inputs[{name[:80]!r}]: a data: URL must be ;base64,")
        try:
            files[name] = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as e:
            raise InvalidInput(f"inputs[{name[:80]!r}] is not valid base64: {e}") from e
    return files


class _Budget:
    """The request body cap, counted over every part: a streamed multipart body is not cut
    off by aiohttp's ``client_max_size`` (only ``read()`` and ``post()`` are)."""

    def __init__(self, cap: int) -> None:
        self.left = cap

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise PayloadTooLarge("the request body is over the gateway's body cap")


async def _read_multipart(
    request: web.Request, max_payload_bytes: int, budget: _Budget
) -> tuple[dict[str, Any], Any]:
    reader = await request.multipart()
    body: dict[str, Any] | None = None
    files: dict[str, bytes] = {}
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise InvalidArgument("nested multipart bodies are not accepted")
        if part.name == JOB_PART:
            if body is not None:
                raise InvalidArgument(f"the part {JOB_PART!r} is given twice")
            cap = max_payload_bytes + _JOB_PART_SLACK
            body = _job_object(await _read_part(part, budget, cap))
        elif part.name == INPUT_PART:
            name = part.filename
            if not name:
                raise InvalidInput(f"each {INPUT_PART!r} part needs a file name (its input name)")
            if name in files:
                raise InvalidInput(f"input {name[:80]!r} is given twice")
            if len(files) >= MAX_INPUT_FILES:
                raise InvalidInput(f"a job carries at most {MAX_INPUT_FILES} input files")
            files[name] = await _read_part(part, budget)  # the core checks the sum
        else:
            raise InvalidArgument(
                f"unknown part {str(part.name)[:40]!r}; send {JOB_PART!r} (the submit object as "
                f"JSON) and one {INPUT_PART!r} part per file"
            )
    if body is None:
        raise InvalidArgument(f"the part {JOB_PART!r} (the submit object as JSON) is required")
    if "inputs" in body:
        raise InvalidArgument(f"send the files as {INPUT_PART!r} parts, not in the job object")
    return body, files or None


async def _read_part(part: BodyPartReader, budget: _Budget, cap: int | None = None) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        budget.take(len(chunk))
        if cap is not None and size > cap:
            raise PayloadTooLarge(f"the {part.name!r} part is over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _job_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw, parse_constant=_no_constants)
    except RecursionError as e:
        raise MalformedJSON(f"the {JOB_PART!r} part is nested too deeply") from e
    except ValueError as e:
        raise MalformedJSON(f"the {JOB_PART!r} part is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise InvalidArgument(f"the {JOB_PART!r} part must be a JSON object")
    return data
