"""ComfyUI's HTTP API (``server.py`` of 0.3.64), every route also under ``/api``.

Error behaviour follows the captures: validation errors are 400 JSON, a body the real server
chokes on (malformed JSON, ``prompt`` not an object) is aiohttp's bare 500 text page, and the
routes that answer "nothing" answer 200 with an empty body.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from supervisor.sim.comfyui.nodes import object_info
from supervisor.sim.comfyui.options import MODEL_FOLDERS
from supervisor.sim.comfyui.validation import MalformedPrompt, validate_prompt
from supervisor.sim.png import encode_solid_png, png_size

if TYPE_CHECKING:
    from supervisor.sim.comfyui.server import FakeComfyUI

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

INTERNAL_ERROR_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")
_FORCED_DOWNLOAD = {
    "text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript", "text/css",
}  # fmt: skip
_INDEX_HTML = "<!doctype html><title>ComfyUI</title><p>fleetq fake ComfyUI</p>\n"


def internal_error() -> web.Response:
    """What aiohttp answers when a handler raises: plain text, connection closed."""
    response = web.Response(status=500, text=INTERNAL_ERROR_TEXT)
    response.force_close()
    return response


def _no_prompt() -> web.Response:
    error = {
        "type": "no_prompt",
        "message": "No prompt provided",
        "details": "No prompt provided",
        "extra_info": {},
    }
    return web.json_response({"error": error, "node_errors": {}}, status=400)


def _system_memory() -> tuple[int, int]:
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 32 * 1024**3, 16 * 1024**3


@web.middleware
async def not_found_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths: 404 with an empty body (ComfyUI's static catch-all route)."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return web.Response(status=404, body=b"", content_type="application/octet-stream")


class ComfyRoutes:
    """The handlers; each one reads or changes the state of one ``FakeComfyUI``."""

    def __init__(self, server: FakeComfyUI) -> None:
        self.server = server

    def table(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/ws", self.websocket),
            ("GET", "/", self.index),
            ("GET", "/embeddings", self.embeddings),
            ("GET", "/models", self.models),
            ("GET", "/models/{folder}", self.models_in_folder),
            ("GET", "/extensions", self.extensions),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/view", self.view),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/features", self.features),
            ("GET", "/prompt", self.get_prompt),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_one),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_one),
            ("GET", "/queue", self.get_queue),
            ("POST", "/prompt", self.post_prompt),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.post_interrupt),
            ("POST", "/free", self.post_free),
            ("POST", "/history", self.post_history),
        ]

    # -- queueing -----------------------------------------------------------------------------

    async def post_prompt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return internal_error()
        try:
            return self._queue_prompt(body)
        except (TypeError, ValueError, AttributeError, KeyError, MalformedPrompt):
            log.warning("comfyui:%d POST /prompt crashed the handler (500)", self.server.port)
            return internal_error()

    def _queue_prompt(self, body: Any) -> web.Response:
        server = self.server
        number: float
        if "number" in body:
            number = float(body["number"])
        else:
            number = server.number
            # Containment (not .get) as in ComfyUI: list and string bodies get this far too.
            if "front" in body and body["front"]:  # noqa: RUF019
                number = -number
            server.number += 1
        if "prompt" not in body:
            log.info("comfyui:%d prompt rejected: no_prompt", server.port)
            return _no_prompt()
        prompt = body["prompt"]
        prompt_id = str(body.get("prompt_id", uuid.uuid4()))
        result = validate_prompt(prompt, server.classes(), body.get("partial_execution_targets"))
        extra_data = body.get("extra_data", {})
        if "client_id" in body:
            extra_data["client_id"] = body["client_id"]
        if not result.ok:
            assert result.error is not None
            log.info("comfyui:%d prompt rejected: %s", server.port, result.error["type"])
            rejected = {"error": result.error, "node_errors": result.node_errors}
            return web.json_response(rejected, status=400)
        for key in SENSITIVE_EXTRA_DATA_KEYS:
            extra_data.pop(key, None)
        server.queue.put([number, prompt_id, prompt, extra_data, result.outputs])
        log.info(
            "comfyui:%d prompt %s queued (number %s, client %s)",
            server.port,
            prompt_id,
            number,
            extra_data.get("client_id"),
        )
        payload: dict[str, Any] = {
            "prompt_id": prompt_id,
            "number": number,
            "node_errors": result.node_errors,
        }
        return web.json_response(payload)

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self.server.queue_info())

    async def get_queue(self, request: web.Request) -> web.Response:
        queue = self.server.queue
        return web.json_response(
            {"queue_running": queue.running(), "queue_pending": queue.pending()}
        )

    async def post_queue(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if "clear" in body and body["clear"]:  # noqa: RUF019 - lists get here too
                self.server.queue.wipe()
                log.info("comfyui:%d pending queue cleared", self.server.port)
            if "delete" in body:
                for prompt_id in body["delete"]:
                    if self.server.queue.delete_pending(prompt_id):
                        log.info("comfyui:%d prompt %s deleted", self.server.port, prompt_id)
        except (ValueError, TypeError, KeyError, AttributeError):
            return internal_error()
        return web.Response(status=200)

    async def post_interrupt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        try:
            prompt_id = body.get("prompt_id")
        except AttributeError:
            return internal_error()
        server = self.server
        if prompt_id:
            if any(item[1] == prompt_id for item in server.queue.running()):
                log.info("comfyui:%d interrupting prompt %s", server.port, prompt_id)
                server.interrupt.request()
            else:
                log.info(
                    "comfyui:%d prompt %s is not currently running, skipping interrupt",
                    server.port,
                    prompt_id,
                )
        else:
            log.info("comfyui:%d global interrupt", server.port)
            server.interrupt.request()
        return web.Response(status=200)

    async def post_free(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            unload_models = bool(body.get("unload_models", False))
            free_memory = bool(body.get("free_memory", False))
        except (ValueError, AttributeError):
            return internal_error()
        self.server.request_free(unload_models, free_memory)
        return web.Response(status=200)

    # -- history ------------------------------------------------------------------------------

    async def get_history(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        try:
            max_items = int(query["max_items"]) if "max_items" in query else None
            offset = int(query["offset"]) if "offset" in query else -1
        except ValueError:
            return internal_error()
        history = self.server.queue.get_history(max_items=max_items, offset=offset)
        return web.json_response(history)

    async def get_history_one(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        return web.json_response(self.server.queue.get_history(prompt_id))

    async def post_history(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if "clear" in body and body["clear"]:  # noqa: RUF019 - lists get here too
                self.server.queue.wipe_history()
            if "delete" in body:
                for prompt_id in body["delete"]:
                    self.server.queue.delete_history(prompt_id)
        except (ValueError, TypeError, KeyError):
            return internal_error()
        return web.Response(status=200)

    # -- files --------------------------------------------------------------------------------

    async def view(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        if "filename" not in query:
            return web.Response(status=404)
        resolved = self.server.files.view_path(
            query["filename"], query.get("type", "output"), query.get("subfolder")
        )
        if isinstance(resolved, int):
            return web.Response(status=resolved)
        disposition = {"Content-Disposition": f'filename="{resolved.name}"'}
        channel = query.get("channel", "rgba")
        if resolved.suffix.lower() == ".png" and channel in ("rgb", "a"):
            # ComfyUI re-encodes; our files are RGB already, and "a" of an RGB image is white.
            data = resolved.read_bytes()
            if channel == "a":
                data = encode_solid_png(*png_size(data), (255, 255, 255))
            return web.Response(body=data, content_type="image/png", headers=disposition)
        # ``preview=webp;90`` would re-encode as WEBP/JPEG; without Pillow the fake serves the
        # original file with its real content type.
        content_type = mimetypes.guess_type(resolved.name)[0] or "application/octet-stream"
        if content_type in _FORCED_DOWNLOAD:
            content_type = "application/octet-stream"
        return web.FileResponse(resolved, headers={**disposition, "Content-Type": content_type})

    async def upload_image(self, request: web.Request) -> web.Response:
        options = self.server.options
        size = request.content_length or 0
        if size > options.max_upload_size:  # aiohttp's client_max_size, as ComfyUI sets it
            raise web.HTTPRequestEntityTooLarge(max_size=options.max_upload_size, actual_size=size)
        if options.upload_status:
            return web.Response(status=options.upload_status)
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return web.Response(status=400)
        overwrite = post.get("overwrite")
        subfolder = str(post.get("subfolder", ""))
        folder_type = post.get("type")
        stored = self.server.files.upload(
            image.filename,
            image.file.read(),
            folder_type if isinstance(folder_type, str) else None,
            subfolder,
            overwrite in ("true", "1"),
        )
        if stored is None:
            return web.Response(status=400)
        name, kind = stored
        return web.json_response({"name": name, "subfolder": subfolder, "type": kind})

    # -- information --------------------------------------------------------------------------

    async def system_stats(self, request: web.Request) -> web.Response:
        server = self.server
        options = server.options
        ram_total, ram_free = _system_memory()
        busy = bool(server.queue.running())
        vram_free = options.vram_total_bytes - (4 if busy else 1) * 1024**3
        is_cpu = options.device_name.startswith("cpu")
        device = {
            "name": options.device_name,
            "type": "cpu" if is_cpu else "cuda",
            "index": None if is_cpu else 0,
            "vram_total": options.vram_total_bytes,
            "vram_free": max(0, vram_free),
            "torch_vram_total": options.vram_total_bytes,
            "torch_vram_free": max(0, vram_free),
        }
        system = {
            "os": "posix" if os.name == "posix" else os.name,
            "ram_total": ram_total,
            "ram_free": ram_free,
            "comfyui_version": options.comfyui_version,
            "required_frontend_version": "1.27.10",
            "installed_templates_version": "0.1.95",
            "required_templates_version": "0.1.95",
            "python_version": sys.version,
            "pytorch_version": "2.8.0+cu128",
            "embedded_python": False,
            "argv": ["main.py", "--listen", server.host, "--port", str(server.port)],
        }
        return web.json_response({"system": system, "devices": [device]})

    async def features(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "supports_preview_metadata": True,
                "max_upload_size": self.server.options.max_upload_size,
            }
        )

    async def object_info(self, request: web.Request) -> web.Response:
        return web.json_response(object_info(self.server.classes()))

    async def object_info_one(self, request: web.Request) -> web.Response:
        node_class = self.server.classes().get(request.match_info["node_class"])
        return web.json_response({node_class.name: node_class.info()} if node_class else {})

    async def embeddings(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(list(MODEL_FOLDERS))

    async def models_in_folder(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in MODEL_FOLDERS:
            return web.Response(status=404)
        return web.json_response(list(self.server.options.files(folder)))

    async def extensions(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(
            text=_INDEX_HTML, content_type="text/html", headers={"Cache-Control": "no-cache"}
        )

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        return await self.server.hub.handle(request)


def add_api_routes(app: web.Application, server: FakeComfyUI) -> None:
    """Register every route at ``/x`` and ``/api/x`` (ComfyUI mirrors its whole API)."""
    app.middlewares.append(not_found_middleware)
    for method, path, handler in ComfyRoutes(server).table():
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/api" + path, handler)
