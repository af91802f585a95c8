"""Small aiohttp servers on loopback that speak just enough ComfyUI or A1111 to run one job,
and can be told to answer any route with garbage: random bytes, huge or truncated bodies,
odd JSON, WebSocket noise. The adapter tests in tests/backends cover malformed *shapes*;
these add what a broken proxy or a crashed server sends."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
GRAPH = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "f"}},
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Frame:
    """One WebSocket frame the server sends: text (``str``) or binary (``bytes``)."""

    data: str | bytes


def raw(status: int, body: bytes, content_type: str = "application/json") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, content_type=content_type)

    return handler


def truncated(declared: int, sent: bytes) -> Handler:
    """Declares ``declared`` bytes, sends ``sent`` and drops the connection."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Length": str(declared)})
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(sent)
        assert request.transport is not None
        request.transport.close()
        return response

    return handler


def huge(size: int, chunk: bytes = b"x" * 65536, status: int = 200) -> Handler:
    """A body of ``size`` bytes of ``chunk`` repeated, streamed."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers={"Content-Length": str(size)})
        response.content_type = "application/json"
        await response.prepare(request)
        left = size
        while left > 0:
            piece = chunk[: min(len(chunk), left)]
            await response.write(piece)
            left -= len(piece)
        return response

    return handler


@dataclass
class FakeComfy:
    """Runs every posted prompt to success; ``overrides`` replace any route's handler;
    ``noise`` frames go to the WebSocket after the prompt starts and before it ends."""

    overrides: dict[tuple[str, str], Handler] = field(default_factory=dict)
    noise: list[Frame] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    _posted: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        routes: dict[tuple[str, str], Handler] = {
            ("POST", "/prompt"): self._post_prompt,
            ("GET", "/prompt"): self._get_prompt,
            ("GET", "/system_stats"): self._system_stats,
            ("GET", "/queue"): self._queue,
            ("POST", "/queue"): self._ok,
            ("POST", "/interrupt"): self._ok,
            ("GET", "/history/{id}"): self._history,
            ("GET", "/view"): self._view,
            ("GET", "/ws"): self._ws,
        }
        return _dispatching(routes, self.overrides)

    async def _ok(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    async def _post_prompt(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.prompts.append(body["prompt_id"])
        self._posted.set()
        return web.json_response({"prompt_id": body["prompt_id"], "number": 1, "node_errors": {}})

    async def _get_prompt(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"exec_info": {"queue_remaining": 0}})

    async def _system_stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"system": {"comfyui_version": "fuzz"}, "devices": []})

    async def _queue(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"queue_running": [], "queue_pending": []})

    async def _history(self, request: web.Request) -> web.StreamResponse:
        prompt_id = request.match_info["id"]
        if prompt_id not in self.prompts:
            return web.json_response({})
        image = {"filename": "fuzz.png", "subfolder": "", "type": "output"}
        entry = {
            "prompt": [],
            "outputs": {"2": {"images": [image]}},
            "status": {"status_str": "success", "completed": True, "messages": []},
        }
        return web.json_response({prompt_id: entry})

    async def _view(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=PNG, content_type="image/png")

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        client_id = request.query.get("clientId", "")
        status = {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}
        await ws.send_json({"type": "status", "data": status})
        await self._posted.wait()
        prompt_id = self.prompts[-1]
        await ws.send_json({"type": "execution_start", "data": {"prompt_id": prompt_id}})
        with contextlib.suppress(ConnectionResetError):
            for frame in self.noise:
                if isinstance(frame.data, bytes):
                    await ws.send_bytes(frame.data)
                else:  # "{PROMPT}" stands for the id of the prompt being run
                    await ws.send_str(frame.data.replace('"{PROMPT}"', json.dumps(prompt_id)))
            done = {"node": None, "display_node": None, "prompt_id": prompt_id}
            await ws.send_json({"type": "executing", "data": done})
            async for message in ws:  # keep the socket open until the client leaves
                if message.type == WSMsgType.ERROR:
                    break
        return ws


@dataclass
class FakeA1111:
    """Answers txt2img with one image after ``delay_s``; ``progress`` answers the polls."""

    overrides: dict[tuple[str, str], Handler] = field(default_factory=dict)
    progress: list[Any] = field(default_factory=list)
    delay_s: float = 0.0

    def app(self) -> web.Application:
        routes: dict[tuple[str, str], Handler] = {
            ("POST", "/sdapi/v1/txt2img"): self._txt2img,
            ("POST", "/sdapi/v1/img2img"): self._txt2img,
            ("GET", "/sdapi/v1/progress"): self._progress,
            ("POST", "/sdapi/v1/interrupt"): self._ok,
        }
        return _dispatching(routes, self.overrides)

    async def _ok(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    async def _txt2img(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        await asyncio.sleep(self.delay_s)  # a generation that takes a while
        image = base64.b64encode(PNG).decode()
        return web.json_response({"images": [image], "parameters": {}, "info": "{}"})

    async def _progress(self, request: web.Request) -> web.StreamResponse:
        if self.progress:
            item = self.progress.pop(0)
            if isinstance(item, bytes):
                return web.Response(body=item, content_type="application/json")
            return web.Response(body=json.dumps(item).encode(), content_type="application/json")
        idle = {"job_count": 0, "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
        return web.json_response({"progress": 0.0, "state": idle})


def _dispatching(
    routes: dict[tuple[str, str], Handler], overrides: dict[tuple[str, str], Handler]
) -> web.Application:
    """An app whose routes answer through ``overrides`` when present at request time, so a
    test can turn garbage on and off while the adapter keeps its connections."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    for key in {*routes, *overrides}:

        async def handler(request: web.Request, key: tuple[str, str] = key) -> web.StreamResponse:
            chosen = overrides.get(key) or routes.get(key)
            if chosen is None:
                raise web.HTTPNotFound()
            return await chosen(request)

        app.router.add_route(key[0], key[1], handler)
    return app


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
