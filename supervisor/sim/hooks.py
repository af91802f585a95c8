"""Fault hooks over HTTP, under ``/fake/*`` (never under ``/api``), for both fakes.

=====================  ==========================================================================
``GET  /fake/state``   JSON snapshot of the instance (queue, sockets, options, ...).
``POST /fake/restart`` body ``{"delay_s": float}`` optional. Answers 200 (and closes that
                       connection), then plays a process restart: in-flight work lost, all state
                       reset, port closed for ``delay_s`` (default: the ``startup_delay_s``
                       option, in the ``startup_mode`` option's way).
``POST /fake/config``  body: run-time options to change. Answers the new options, or 400
                       ``{"error": ...}`` for an unknown option or a bad value.
``POST /fake/drop-ws`` ComfyUI only. Body ``{"abrupt": bool}`` optional: close every
                       WebSocket (abrupt: cut TCP without a close frame). Answers
                       ``{"dropped": n}``.
=====================  ==========================================================================
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any, Protocol

from aiohttp import web


class Steerable(Protocol):
    """What a fake server offers to its hooks."""

    def state(self) -> dict[str, Any]: ...

    def configure(self, **changes: Any) -> Any: ...

    async def restart(self, delay_s: float | None = None) -> None: ...


class DropsWebSockets(Protocol):
    async def drop_websockets(self, abrupt: bool = False) -> int: ...


async def _json_object(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    body = json.loads(text)
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def add_hook_routes(
    app: web.Application, server: Steerable, sockets: DropsWebSockets | None = None
) -> None:
    """Register ``/fake/state``, ``/fake/restart``, ``/fake/config`` (and ``/fake/drop-ws``
    when ``sockets`` is given)."""
    background: set[asyncio.Task[None]] = set()

    async def state(request: web.Request) -> web.Response:
        return web.json_response(server.state())

    async def restart(request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            delay_s = float(body["delay_s"]) if "delay_s" in body else None
        except (ValueError, TypeError) as ex:
            return _bad_request(str(ex))
        # Restart once this response is on its way, so the caller still gets its 200.
        task = asyncio.create_task(server.restart(delay_s), name="fake-restart")
        background.add(task)
        task.add_done_callback(background.discard)
        response = web.json_response({"restarting": True, "delay_s": delay_s})
        response.force_close()
        return response

    async def config(request: web.Request) -> web.Response:
        try:
            changes = await _json_object(request)
            options = server.configure(**changes)
        except (ValueError, TypeError) as ex:
            return _bad_request(str(ex))
        return web.json_response(dataclasses.asdict(options))

    async def cancel_background(app: web.Application) -> None:
        for task in list(background):
            task.cancel()

    app.on_cleanup.append(cancel_background)
    app.router.add_get("/fake/state", state)
    app.router.add_post("/fake/restart", restart)
    app.router.add_post("/fake/config", config)

    if sockets is not None:
        drop_target = sockets

        async def drop_ws(request: web.Request) -> web.Response:
            try:
                body = await _json_object(request)
            except ValueError as ex:
                return _bad_request(str(ex))
            dropped = await drop_target.drop_websockets(abrupt=bool(body.get("abrupt", False)))
            return web.json_response({"dropped": dropped})

        app.router.add_post("/fake/drop-ws", drop_ws)
