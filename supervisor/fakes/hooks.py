"""Fault hooks of the fake ComfyUI over HTTP, under ``/fake/*`` (never under ``/api``).

=====================  ==========================================================================
``GET  /fake/state``   JSON snapshot: number, running, pending, history ids, sockets, options...
``POST /fake/restart`` body ``{"delay_s": float}`` optional. Answers 200 (connection closed),
                       then plays a process restart: sockets dropped, running prompt lost,
                       queue/history/cache/counter reset, port closed for ``delay_s``
                       (default ``startup_delay_s``, as ``startup_mode``).
``POST /fake/drop-ws`` body ``{"abrupt": bool}`` optional: close every WebSocket (abrupt: cut
                       TCP without a close frame). Answers ``{"dropped": n}``.
``POST /fake/config``  body: run-time options to change (``history_delay_s``, ``caching``,
                       ``startup_delay_s``, ``startup_mode``, ``checkpoints``, ``max_history``).
                       Answers the new options; 400 ``{"error": ...}`` on a bad name or value.
=====================  ==========================================================================
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from supervisor.fakes.comfyui.server import FakeComfyUI

log = logging.getLogger(__name__)


async def _json_object(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    text = await request.text()
    if not text.strip():
        return {}
    body = json.loads(text)
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def add_hook_routes(app: web.Application, server: FakeComfyUI) -> None:
    """Register ``/fake/state``, ``/fake/restart``, ``/fake/drop-ws`` and ``/fake/config``."""
    background: set[asyncio.Task[None]] = set()

    async def state(request: web.Request) -> web.Response:
        return web.json_response(server.state())

    async def restart(request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
            delay_s = float(body["delay_s"]) if "delay_s" in body else None
        except (ValueError, TypeError) as ex:
            return _bad_request(str(ex))
        # Restart after this response is on its way, so the caller gets its 200.
        task = asyncio.create_task(server.restart(delay_s), name="fake-comfyui-restart")
        background.add(task)
        task.add_done_callback(background.discard)
        response = web.json_response({"restarting": True, "delay_s": delay_s})
        response.force_close()
        return response

    async def drop_ws(request: web.Request) -> web.Response:
        try:
            body = await _json_object(request)
        except ValueError as ex:
            return _bad_request(str(ex))
        dropped = await server.drop_websockets(abrupt=bool(body.get("abrupt", False)))
        return web.json_response({"dropped": dropped})

    async def config(request: web.Request) -> web.Response:
        try:
            changes = await _json_object(request)
            options = server.configure(**changes)
        except (ValueError, TypeError) as ex:
            return _bad_request(str(ex))
        return web.json_response(dataclasses.asdict(options))

    app.router.add_get("/fake/state", state)
    app.router.add_post("/fake/restart", restart)
    app.router.add_post("/fake/drop-ws", drop_ws)
    app.router.add_post("/fake/config", config)
