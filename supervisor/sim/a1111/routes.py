"""A1111's HTTP API (``modules/api/api.py``, ``modules/progress.py``) on aiohttp.

Only ``/sdapi/v1/*`` in ``--nowebui`` mode; with ``webui`` also ``/``, ``/internal/ping`` and
``/internal/progress``. Generation requests queue on one FIFO lock (``asyncio.Lock`` wakes
waiters in arrival order) and hold the connection for queue wait plus run time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import random
import string
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from supervisor.sim.a1111.errors import ApiError, RequestValidationError
from supervisor.sim.a1111.generate import Model, generate, info_json
from supervisor.sim.a1111.options import IMG2IMG_SCRIPTS, TXT2IMG_SCRIPTS
from supervisor.sim.a1111.params import SAMPLERS, SCHEDULERS, Kind, parse_request

if TYPE_CHECKING:
    from supervisor.sim.a1111.server import FakeA1111

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_task_id(kind: str) -> str:
    """``task(txt2img-AB12CD3)``-style ids, as ``modules/call_queue.create_task_id``."""
    suffix = "".join(random.choices(string.ascii_uppercase + string.digits, k=7))
    return f"task({kind}-{suffix})"


async def _json_body(request: web.Request) -> Any:
    text = await request.text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as ex:
        raise RequestValidationError(
            [
                {
                    "loc": ["body", ex.pos],
                    "msg": f"{ex.msg}: line {ex.lineno} column {ex.colno} (char {ex.pos})",
                    "type": "value_error.jsondecode",
                    "ctx": {
                        "msg": ex.msg,
                        "doc": ex.doc,
                        "pos": ex.pos,
                        "lineno": ex.lineno,
                        "colno": ex.colno,
                    },
                }
            ]
        ) from ex


class A1111Routes:
    """Handlers bound to one ``FakeA1111``."""

    def __init__(self, server: FakeA1111) -> None:
        self.server = server

    def _authorized(self, request: web.Request) -> None:
        credentials = self.server.options.credentials()
        if not credentials:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise ApiError(401, "Not authenticated", {"WWW-Authenticate": "Basic"})
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(401, "Invalid authentication credentials") from None
        if credentials.get(user) != password:
            raise ApiError(401, "Incorrect username or password", {"WWW-Authenticate": "Basic"})

    def _api(self, handler: Handler) -> Handler:
        """Routes added through ``Api.add_api_route`` (the ones ``--api-auth`` protects)."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            self._authorized(request)
            return await handler(request)

        return wrapped

    # -- generation ---------------------------------------------------------------------------

    async def txt2img(self, request: web.Request) -> web.Response:
        return await self._generate(request, "txt2img")

    async def img2img(self, request: web.Request) -> web.Response:
        return await self._generate(request, "img2img")

    async def _generate(self, request: web.Request, kind: Kind) -> web.Response:
        server = self.server
        parsed = parse_request(await _json_body(request), kind)
        task_id = parsed["force_task_id"] or create_task_id(kind)
        server.tasks.add(task_id)
        log.info("a1111:%d %s %s queued (%d waiting)", server.port, kind, task_id, server.waiting)
        loop = asyncio.get_running_loop()
        queued_at = loop.time()
        with server.track_request(request):
            async with server.lock:
                state = server.shared_state
                state.begin(f"scripts_{kind}")
                server.tasks.start(task_id)
                started = loop.time()
                log.info(
                    "a1111:%d %s %s running after %.3f s in queue",
                    server.port, kind, task_id, started - queued_at,
                )  # fmt: skip
                try:
                    title, settings = await server.prepare_job(
                        parsed["override_settings"], parsed["override_settings_restore_afterwards"]
                    )
                    generated = await generate(
                        parsed,
                        state,
                        server.options.step_seconds,
                        Model(title),
                        server.options.version,
                        settings,
                    )
                    server.tasks.finish(task_id)
                except Exception as ex:
                    log.info("a1111:%d %s %s failed: %r", server.port, kind, task_id, ex)
                    raise
                finally:
                    state.end()
        outcome = "interrupted" if generated.interrupted else "done"
        log.info(
            "a1111:%d %s %s %s in %.3f s (%d images)",
            server.port, kind, task_id, outcome, loop.time() - started, len(generated.images),
        )  # fmt: skip
        return web.json_response(
            {
                "images": generated.images,
                "parameters": parsed.parameters,
                "info": info_json(generated.info),
            }
        )

    # -- progress and control -----------------------------------------------------------------

    async def progress(self, request: web.Request) -> web.Response:
        """``GET /sdapi/v1/progress?skip_current_image=``: false by default, as in A1111."""
        raw = request.query.get("skip_current_image", "false").lower()
        skip = raw in ("1", "true", "yes", "on", "t", "y")
        state = self.server.shared_state
        if not skip:
            state.set_current_image(self.server.settings())
        return web.json_response(state.progress(skip))

    async def interrupt(self, request: web.Request) -> web.Response:
        log.info("a1111:%d interrupt (job %r)", self.server.port, self.server.shared_state.job)
        self.server.shared_state.interrupt()
        return web.json_response({})

    async def skip(self, request: web.Request) -> web.Response:
        log.info("a1111:%d skip (job %r)", self.server.port, self.server.shared_state.job)
        self.server.shared_state.skip()
        return web.json_response(None)

    # -- models and options -------------------------------------------------------------------

    async def sd_models(self, request: web.Request) -> web.Response:
        models = []
        for title in self.server.options.models:
            model = Model(title)
            filename = title.split(" [")[0]
            models.append(
                {
                    "title": title,
                    "model_name": model.name,
                    "hash": model.hash,
                    "sha256": (model.hash * 7)[:64] if model.hash else None,
                    "filename": f"/models/Stable-diffusion/{filename}",
                    "config": None,
                }
            )
        return web.json_response(models)

    async def loras(self, request: web.Request) -> web.Response:
        """The Lora extension's list: ``name`` is the file name without extension; ``alias``
        comes from the file's metadata (``ss_output_name``), the name when there is none."""
        return web.json_response(
            [
                {
                    "name": file.rsplit(".", 1)[0],
                    "alias": file.rsplit(".", 1)[0],
                    "path": f"/models/Lora/{file}",
                    "metadata": {},
                }
                for file in self.server.options.loras
            ]
        )

    async def scripts(self, request: web.Request) -> web.Response:
        extra = [name.lower() for name in self.server.options.scripts]
        return web.json_response(
            {"txt2img": [*TXT2IMG_SCRIPTS, *extra], "img2img": [*IMG2IMG_SCRIPTS, *extra]}
        )

    async def get_options(self, request: web.Request) -> web.Response:
        return web.json_response(self.server.settings())

    async def set_options(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise RequestValidationError(
                [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]
            )
        await self.server.set_settings(body)
        return web.json_response(None)

    async def samplers(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {"name": name, "aliases": aliases, "options": options}
                for name, (aliases, options) in SAMPLERS.items()
            ]
        )

    async def schedulers(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {"name": name, "label": label, "aliases": None, "default_rho": -1,
                 "need_inner_model": False}
                for name, label in SCHEDULERS
            ]
        )  # fmt: skip

    async def cmd_flags(self, request: web.Request) -> web.Response:
        options = self.server.options
        return web.json_response(
            {
                "api": True,
                "nowebui": not options.webui,
                "port": self.server.port,
                "server_name": self.server.host,
                "api_auth": None,
                "skip_load_model_at_start": False,
            }
        )

    # -- UI mode only -------------------------------------------------------------------------

    async def internal_ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def internal_progress(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("id_task"), str):
            raise RequestValidationError(
                [
                    {
                        "loc": ["body", "id_task"],
                        "msg": "field required",
                        "type": "value_error.missing",
                    }
                ]
            )
        live = body.get("id_live_preview", -1)
        return web.json_response(
            self.server.tasks.progress(body["id_task"], int(live), self.server.shared_state)
        )

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>Stable Diffusion</title><p>fleetq fake A1111</p>\n",
            content_type="text/html",
        )


def add_api_routes(app: web.Application, server: FakeA1111) -> None:
    """Register the API (and, with ``webui``, the UI's internal routes)."""
    routes = A1111Routes(server)
    api = routes._api
    app.router.add_post("/sdapi/v1/txt2img", api(routes.txt2img))
    app.router.add_post("/sdapi/v1/img2img", api(routes.img2img))
    app.router.add_get("/sdapi/v1/progress", api(routes.progress))
    app.router.add_post("/sdapi/v1/interrupt", api(routes.interrupt))
    app.router.add_post("/sdapi/v1/skip", api(routes.skip))
    app.router.add_get("/sdapi/v1/sd-models", api(routes.sd_models))
    app.router.add_get("/sdapi/v1/options", api(routes.get_options))
    app.router.add_post("/sdapi/v1/options", api(routes.set_options))
    app.router.add_get("/sdapi/v1/samplers", api(routes.samplers))
    app.router.add_get("/sdapi/v1/loras", api(routes.loras))
    app.router.add_get("/sdapi/v1/scripts", api(routes.scripts))
    app.router.add_get("/sdapi/v1/schedulers", api(routes.schedulers))
    app.router.add_get("/sdapi/v1/cmd-flags", api(routes.cmd_flags))
    if server.options.webui:
        app.router.add_get("/", routes.index)
        app.router.add_get("/internal/ping", routes.internal_ping)
        app.router.add_post("/internal/progress", routes.internal_progress)
