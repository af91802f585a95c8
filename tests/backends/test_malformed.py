"""Answers no healthy backend gives: the adapters call them BackendUnavailable (or reject).

Each case runs a small real aiohttp server on a loopback port that answers one route badly;
routes it does not have answer 404.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from backends_testkit import ProgressLog, fake_graph

from supervisor.backends.base import BackendUnavailable, JobRejected
from supervisor.backends.comfyui import ComfyUIBackend
from supervisor.backends.factory import make_backend

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[[dict[tuple[str, str], Handler]], Awaitable[str]]
COMFY_500 = "500 Internal Server Error\n\nServer got itself in trouble"


def answer(status: int = 200, *, text: str | None = None, json: Any = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if json is not None:
            return web.json_response(json, status=status)
        return web.Response(status=status, text=text or "")

    return handler


async def _accepted(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    return web.json_response({"prompt_id": body["prompt_id"], "number": 0, "node_errors": {}})


async def _history_of_wrong_shape(request: web.Request) -> web.StreamResponse:
    return web.json_response({request.match_info["id"]: ["not", "an", "entry"]})


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[TestServer] = []

    async def start(routes: dict[tuple[str, str], Handler]) -> str:
        app = web.Application()
        for (method, path), handler in routes.items():
            app.router.add_route(method, path, handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


@pytest.mark.parametrize(
    ("routes", "match"),
    [
        ({("POST", "/prompt"): answer(500, text=COMFY_500)}, "HTTP 500"),
        ({("POST", "/prompt"): answer(200, text="<html>proxy</html>")}, "not JSON"),
        ({("POST", "/prompt"): answer(200, json=["a list"])}, "answered 200"),
        ({("POST", "/prompt"): answer(400, text="bad")}, "not JSON"),
        ({("POST", "/prompt"): answer(400, json={"detail": "?"})}, "without an 'error'"),
        ({("POST", "/prompt"): answer(404, text="")}, "HTTP 404"),
        ({("POST", "/prompt"): answer(503, text="starting")}, "HTTP 503"),
        (
            {("POST", "/prompt"): _accepted, ("GET", "/queue"): answer(json={"queue": 1})},
            "queue_running",
        ),
        (
            {
                ("POST", "/prompt"): _accepted,
                ("GET", "/queue"): answer(json={"queue_running": [], "queue_pending": []}),
                ("GET", "/history/{id}"): answer(500, text=COMFY_500),
            },
            "HTTP 500",
        ),
        (
            {
                ("POST", "/prompt"): _accepted,
                ("GET", "/queue"): answer(json={"queue_running": [], "queue_pending": []}),
                ("GET", "/history/{id}"): _history_of_wrong_shape,
            },
            "history entry is list",
        ),
    ],
    ids=[
        "500-text",
        "200-html",
        "200-list",
        "400-text",
        "400-no-error",
        "404",
        "503",
        "queue-shape",
        "history-500",
        "history-shape",
    ],
)
async def test_comfyui_malformed_answers_are_backend_unavailable(
    serve: Serve, routes: dict[tuple[str, str], Handler], match: str
) -> None:
    # No /ws route: the adapter follows by polling from the start.
    backend = ComfyUIBackend(await serve(routes), poll_interval_s=0.01, restart_grace_s=0.2)
    try:
        with pytest.raises(BackendUnavailable, match=match):
            await backend.run("junk", fake_graph("junk"), ProgressLog())
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    ("routes", "detail"),
    [
        ({("GET", "/system_stats"): answer(text="<html>")}, "not JSON"),
        ({("GET", "/system_stats"): answer(json={"devices": []})}, "no 'system'"),
        (
            {
                ("GET", "/system_stats"): answer(json={"system": {}, "devices": []}),
                ("GET", "/prompt"): answer(json={"exec_info": {}}),
            },
            "queue_remaining",
        ),
        ({("GET", "/system_stats"): answer(503, text="starting")}, "HTTP 503"),
    ],
    ids=["html", "no-system", "no-queue-remaining", "503"],
)
async def test_comfyui_probe_of_a_malformed_backend_is_not_alive(
    serve: Serve, routes: dict[tuple[str, str], Handler], detail: str
) -> None:
    backend = ComfyUIBackend(await serve(routes))
    try:
        probe = await backend.probe()
    finally:
        await backend.aclose()
    assert not probe.alive and detail in probe.detail


@pytest.mark.parametrize(
    ("routes", "match"),
    [
        ({("POST", "/sdapi/v1/txt2img"): answer(json={"images": "x"})}, "'images' list"),
        ({("POST", "/sdapi/v1/txt2img"): answer(json={"images": ["%%%"]})}, "base64"),
        ({("POST", "/sdapi/v1/txt2img"): answer(text="ok")}, "'images' list"),
        ({("POST", "/sdapi/v1/txt2img"): answer(502, text="bad gateway")}, "HTTP 502"),
        ({("POST", "/sdapi/v1/txt2img"): answer(401, json={"detail": "no"})}, "auth"),
        ({}, "API enabled"),
    ],
    ids=["images-not-list", "bad-base64", "text", "502", "401", "no-api"],
)
async def test_a1111_malformed_answers_are_backend_unavailable(
    serve: Serve, routes: dict[tuple[str, str], Handler], match: str
) -> None:
    backend = make_backend("a1111", await serve(routes), poll_interval_s=0.01)
    try:
        with pytest.raises(BackendUnavailable, match=match):
            await backend.run("junk", {"prompt": "x"}, ProgressLog())
        probe = await backend.probe()
        assert not probe.alive and probe.detail
    finally:
        await backend.aclose()


async def test_a1111_other_4xx_with_an_error_body_is_rejected(serve: Serve) -> None:
    body = {"error": "HTTPException", "detail": "Script not found", "body": "", "errors": ""}
    url = await serve({("POST", "/sdapi/v1/txt2img"): answer(404, json=body)})
    backend = make_backend("a1111", url)
    try:
        with pytest.raises(JobRejected, match="Script not found"):
            await backend.run("r", {"prompt": "x", "script_name": "nope"}, ProgressLog())
    finally:
        await backend.aclose()
