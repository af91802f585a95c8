"""JSON in and out: the request body cap, strict JSON objects, compact JSON answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from fleetq.errors import InvalidArgument, ValidationError
from fleetq.gateway.state import OPTIONS

#: The request body cap of an application, in bytes (set by ``create_app``).
BODY_CAP: web.AppKey[int] = web.AppKey("fleetq_body_cap")


class MalformedJSON(ValidationError):
    """The request body is not valid JSON."""


class UnsupportedMediaType(ValidationError):
    """A JSON body sent with another content type than ``application/json``."""


class BodyTimeout(ValidationError):
    """The client did not send the request body in time."""


def dumps(data: Any) -> str:
    """Compact JSON for response bodies and event data (never NaN, never a newline)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


def default_body_cap(max_payload_bytes: int, max_input_bytes: int = 0) -> int:
    """The default request cap: the core's payload cap, plus its input files cap grown by
    base64 (4/3), plus room for the JSON envelope and indentation, so the core's own checks
    (with their clearer messages) decide near the limits."""
    inputs = -(-max_input_bytes // 3) * 4
    return max_payload_bytes + inputs + max(1024 * 1024, max_payload_bytes // 4)


@web.middleware
async def body_cap_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a declared oversize body before reading a byte of it; a chunked body is cut off by
    the application's ``client_max_size`` while it is read."""
    cap = request.app[BODY_CAP]
    if request.content_length is not None and request.content_length > cap:
        raise web.HTTPRequestEntityTooLarge(max_size=cap, actual_size=request.content_length)
    return await handler(request)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; raises a ``ValidationError`` otherwise.

    The body must be declared ``application/json``: browsers send other types (``text/plain``,
    forms) from any web site without asking, never this one. It must arrive within the
    options' ``body_timeout_s``.
    """
    if request.content_type != "application/json":
        declared = request.headers.get("Content-Type", "")[:100]
        raise UnsupportedMediaType(
            f"send the body as Content-Type: application/json, not {declared or 'none'!r}"
        )
    timeout_s = request.app[OPTIONS].body_timeout_s
    try:
        raw = await asyncio.wait_for(request.read(), timeout_s)
    except asyncio.TimeoutError as e:
        raise BodyTimeout(f"the request body did not arrive within {timeout_s:g} s") from e
    if not raw.strip():
        raise MalformedJSON("the request body is empty; send a JSON object")
    try:
        data = json.loads(raw, parse_constant=_no_constants)
    except RecursionError as e:
        raise MalformedJSON("the request body is nested too deeply") from e
    except ValueError as e:  # includes UnicodeDecodeError
        raise MalformedJSON(f"the request body is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise InvalidArgument(f"the request body must be a JSON object, not {_kind(data)}")
    return data


#: How many unknown field names an error quotes, and how much of each: a body with a million
#: keys must not turn into a megabyte-sized error built with seconds of CPU.
UNKNOWN_SHOWN = 5
UNKNOWN_NAME_CHARS = 40


def reject_unknown(body: Mapping[str, Any], allowed: Collection[str]) -> None:
    """Refuse fields the endpoint does not know, so a typo is an error and not ignored.

    The message names at most :data:`UNKNOWN_SHOWN` of them, each cut to
    :data:`UNKNOWN_NAME_CHARS` characters, and says how many there are.
    """
    unknown = [key for key in body if key not in allowed]
    if not unknown:
        return
    shown = ", ".join(repr(key[:UNKNOWN_NAME_CHARS]) for key in unknown[:UNKNOWN_SHOWN])
    more = len(unknown) - UNKNOWN_SHOWN
    tail = f" and {more} more" if more > 0 else ""
    raise InvalidArgument(f"unknown field(s) {shown}{tail}; allowed: {', '.join(allowed)}")


def _kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
