"""Error bodies of A1111 (``api_middleware``) and of Forge (FastAPI defaults).

=========================  ============================================  =====================
failure                    A1111 (status, body)                          Forge
=========================  ============================================  =====================
HTTP error (bad sampler)   4xx ``{"error": "HTTPException", "detail",    4xx ``{"detail"}``
                           "body": "", "errors": "400: detail"}``
crash (RuntimeError, OOM)  500 ``{"error": "RuntimeError", "detail": "",  500 ``{"error", "detail",
                           "body": "", "errors": str(exception)}``       "body", "message"}``
                                                                         (``forge-legacy``, before
                                                                         late 2024: text/plain
                                                                         ``Internal Server Error``)
bad request body           422 ``{"detail": [{"loc", "msg", "type"}]}``  same
unknown path / method      404 / 405 ``{"detail": "Not Found"}``          same
=========================  ============================================  =====================

A1111 also adds ``X-Process-Time`` to every response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Starlette's ``HTTPException``: a deliberate HTTP error with a ``detail``."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"


class RequestValidationError(Exception):
    """FastAPI's 422: the body does not fit the request model."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


class OutOfMemoryError(RuntimeError):
    """Named like ``torch.cuda.OutOfMemoryError`` so error bodies read the same."""


def error_response(ex: Exception, shape: str) -> web.Response:
    """The response the real server gives for ``ex``."""
    if isinstance(ex, RequestValidationError):
        return web.json_response({"detail": ex.errors}, status=422)
    if shape in ("forge", "forge-legacy"):
        if isinstance(ex, ApiError):
            return web.json_response({"detail": ex.detail}, status=ex.status, headers=ex.headers)
        if shape == "forge-legacy":
            return web.Response(status=500, text="Internal Server Error")
        # webui.py _handle_exception: vars(e) has no detail/body for a plain exception.
        body = {"error": type(ex).__name__, "detail": "", "body": "", "message": str(ex)}
        return web.json_response(body, status=500)
    body = {
        "error": "HTTPException" if isinstance(ex, ApiError) else type(ex).__name__,
        "detail": ex.detail if isinstance(ex, ApiError) else "",
        "body": "",
        "errors": str(ex),
    }
    status = ex.status if isinstance(ex, ApiError) else 500
    headers = ex.headers if isinstance(ex, ApiError) else {}
    return web.json_response(body, status=status, headers=headers)


def api_middleware(shape: Callable[[], str], port: Callable[[], int]) -> Middleware:
    """Turn exceptions into the configured error shape; 404/405 as FastAPI; timing header."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.time()
        response: web.StreamResponse
        try:
            response = await handler(request)
        except web.HTTPException as ex:
            # Routing errors (no such path, wrong method) look like FastAPI's.
            response = web.json_response({"detail": ex.reason}, status=ex.status)
        except (ApiError, RequestValidationError) as ex:
            response = error_response(ex, shape())
        except Exception as ex:
            log.warning("a1111:%d API error: %s: %s %r", port(), request.method, request.path, ex)
            response = error_response(ex, shape())
        if shape() == "a1111" and not response.prepared:
            response.headers["X-Process-Time"] = str(round(time.time() - started, 4))
        return response

    return middleware
