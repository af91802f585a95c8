"""Server-sent event streams: one job's progress, and the fleet's event log.

``GET /v1/jobs/{id}/events`` sends a ``status`` snapshot, then every event of the job's own
stream (``claimed``, ``progress``, ``retrying``, ``requeued``, ``cancel_requested``...) and ends
after the terminal one (``completed``, ``failed`` or ``cancelled``), whose data carries the final
job. ``GET /v1/events`` follows the fleet event stream until the client leaves; both resume
after ``Last-Event-ID`` (header, or ``?last_event_id=`` for clients that cannot set headers).

Reads block on XREAD for at most a second and re-arm, so a shutdown ends open streams quickly;
a comment line every 15 s keeps proxies from closing an idle stream and detects gone clients.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Mapping
from typing import Any

from aiohttp import web

from fleetq.errors import InvalidArgument, RedisUnavailable
from fleetq.gateway import shapes
from fleetq.gateway.errors import error_body
from fleetq.gateway.follower import entry_ms, last_event_id
from fleetq.gateway.jsonio import dumps
from fleetq.gateway.state import Gateway, base_url, gateway
from fleetq.model import JobStatus
from fleetq.store import StreamEntry
from fleetq.validation import check_job_id, check_service

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

TERMINAL_EVENTS = ("completed", "failed", "cancelled")
KEEPALIVE_S = 15.0
_STREAM_ID = re.compile(r"^[0-9]{1,20}(-[0-9]{1,20})?$")


def sse(event: str, data: Mapping[str, Any], event_id: str | None = None) -> bytes:
    """One server-sent event. The JSON data never contains a newline."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {dumps(data)}\n\n".encode()


def _resume_id(request: web.Request) -> str | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if raw is None or raw == "":
        return None
    if not _STREAM_ID.fullmatch(raw):
        raise InvalidArgument(f"Last-Event-ID must be a stream id such as 1700000000000-0: {raw!r}")
    return raw


async def _open(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            # nginx buffers responses by default, which would hold events back.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    return response


def _event_data(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {k: v for k, v in fields.items() if v != ""}
    data["at"] = shapes.iso(entry_ms(entry_id))
    if "progress" in data:
        try:
            data["progress"] = float(data["progress"])
        except ValueError:
            del data["progress"]
    return data


class _Keepalive:
    def __init__(self) -> None:
        self.last = time.monotonic()

    async def tick(self, response: web.StreamResponse) -> None:
        if time.monotonic() - self.last >= KEEPALIVE_S:
            await response.write(b": keepalive\n\n")
            self.last = time.monotonic()


async def _run_stream(
    request: web.Request, response: web.StreamResponse, body: Awaitable[None]
) -> web.StreamResponse:
    """Run an open stream to its end. Once the headers are sent an error can no longer be a
    JSON answer: it ends the stream with an ``error`` event instead (the client may resume)."""
    try:
        await body
    except ConnectionResetError:
        pass  # the client left
    except Exception as e:
        if isinstance(e, RedisUnavailable):
            error = error_body(type(e).__name__, str(e))
        else:
            log.exception("event stream %s failed", request.path)
            error = error_body("InternalError", "internal error; see the gateway's log")
        with contextlib.suppress(ConnectionResetError):
            await response.write(sse("error", error))
    return response


@routes.get("/v1/jobs/{job_id}/events", allow_head=False)
async def job_events(request: web.Request) -> web.StreamResponse:
    gw = gateway(request)
    job_id = check_job_id(request.match_info["job_id"])
    store = gw.client.store
    # Take the stream position before the snapshot, so nothing between the two is missed.
    last_id = _resume_id(request) or await store.last_job_event_id(job_id)
    status = await gw.client.status(job_id)  # 404 before the stream opens
    url = base_url(request)
    response = await _open(request)
    return await _run_stream(request, response, _follow_job(gw, response, status, last_id, url))


async def _follow_job(
    gw: Gateway, response: web.StreamResponse, status: JobStatus, last_id: str, url: str
) -> None:
    await response.write(sse("status", {"job": shapes.job(status, url)}))
    if status.is_terminal:
        await response.write(sse(status.state.value, {"job": shapes.job(status, url)}))
        return
    job_id = status.id
    store = gw.client.store
    keepalive = _Keepalive()
    while not gw.closing.is_set():
        entries = await store.read_job_events(job_id, last_id, gw.stream_block_ms)
        if not entries:
            await keepalive.tick(response)
            continue
        for entry_id, fields in entries:
            last_id = entry_id
            kind = fields.get("type", "event")
            data = _event_data(entry_id, fields)
            if kind in TERMINAL_EVENTS:
                data["job"] = shapes.job(await gw.client.status(job_id), url)
            await response.write(sse(kind, data, entry_id))
            keepalive.last = time.monotonic()
            if kind in TERMINAL_EVENTS:
                return


@routes.get("/v1/events", allow_head=False)
async def fleet_events(request: web.Request) -> web.StreamResponse:
    """The fleet event log (``submitted``, ``claimed``, ``progress``, ``completed``, ``failed``,
    ``cancelled``, ``requeued``, ``retrying``, ``bumped``, ``paused``, ``drained``...), optionally
    of one service (``?service=``). Without Last-Event-ID it starts with the next event."""
    gw = gateway(request)
    service = request.query.get("service")
    if service is not None:
        check_service(service, gw.settings)
    last_id = _resume_id(request) or await last_event_id(gw.client.store)
    response = await _open(request)
    return await _run_stream(request, response, _follow_fleet(gw, response, last_id, service))


async def _follow_fleet(
    gw: Gateway, response: web.StreamResponse, last_id: str, service: str | None
) -> None:
    keepalive = _Keepalive()
    while not gw.closing.is_set():
        entries: list[StreamEntry] = await gw.client.store.read_events(
            last_id, block_ms=gw.stream_block_ms, count=200
        )
        for entry_id, fields in entries:
            last_id = entry_id
            if service is not None and fields.get("service") != service:
                continue
            await response.write(
                sse(fields.get("type", "event"), _event_data(entry_id, fields), entry_id)
            )
            keepalive.last = time.monotonic()
        # Also after a batch that was all filtered out: a busy stream must still notice a
        # client that left.
        await keepalive.tick(response)
