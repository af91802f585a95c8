"""JSON errors: every failure a client sees is ``{"error": {"type", "message"}}`` with a status
code that says whose fault it is; a stack trace never leaves the gateway."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from fleetq.errors import (
    FleetqError,
    InvalidTransition,
    JobNotFound,
    OutputsExpired,
    PayloadTooLarge,
    RedisUnavailable,
    StaleLease,
    ValidationError,
)
from fleetq.gateway.fanout import TooManyStreams
from fleetq.gateway.jsonio import BODY_CAP, BodyTimeout, UnsupportedMediaType, json_response

log = logging.getLogger(__name__)

#: Seconds a client should wait before retrying after a 503.
RETRY_AFTER_S = 2


class OutputNotFound(FleetqError):
    """The job has no output file with this index."""


class PreviewNotFound(FleetqError):
    """The job has no live preview now (not running, none sent yet, or it expired)."""


class NotCompleted(InvalidTransition):
    """Output files exist only once a job completed."""


# Most specific first: PayloadTooLarge is a ValidationError, NotCompleted an InvalidTransition.
_STATUS: tuple[tuple[type[FleetqError], int], ...] = (
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (BodyTimeout, 408),
    (ValidationError, 400),
    (JobNotFound, 404),
    (OutputNotFound, 404),
    (PreviewNotFound, 404),
    (InvalidTransition, 409),
    (StaleLease, 409),
    (OutputsExpired, 410),
    (RedisUnavailable, 503),
    (TooManyStreams, 503),
)

_HTTP_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    421: "MisdirectedRequest",
}


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def error_response(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON error answer."""
    return json_response(error_body(kind, message), status, headers)


def status_of(error: FleetqError) -> int:
    """The HTTP status for a fleetq error; 500 for one this table does not know."""
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


def fleetq_error_response(error: FleetqError) -> web.Response:
    status = status_of(error)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return error_response(status, type(error).__name__, str(error), headers)


def _http_error_response(request: web.Request, error: web.HTTPException) -> web.Response:
    status = error.status
    kind = _HTTP_TYPES.get(status, "HTTPError")
    headers: dict[str, str] = {}
    if isinstance(error, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(error.allowed_methods))
        headers["Allow"] = allowed
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    elif isinstance(error, web.HTTPNotFound) and error.text == "404: Not Found":
        message = f"no route {request.method} {request.path}; see /openapi.json"
    elif isinstance(error, web.HTTPRequestEntityTooLarge):
        message = (
            f"request body is larger than the gateway's cap of {request.app[BODY_CAP]} bytes; "
            "send large inputs by reference, not inline"
        )
    else:
        message = error.text or error.reason
    for name in ("WWW-Authenticate", "Retry-After"):
        if name in error.headers:
            headers[name] = error.headers[name]
    return error_response(status, kind, message, headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every exception into a JSON error; log what is not the client's fault."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _http_error_response(request, e)
    except FleetqError as e:
        response = fleetq_error_response(e)
        if response.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, e)
        return response
    except Exception:  # CancelledError is a BaseException: it passes through untouched
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "InternalError", "internal error; see the gateway's log")
