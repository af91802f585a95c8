"""Server-sent event streams: one job's progress, and the fleet's event log.

``GET /v1/jobs/{id}/events`` sends a ``status`` snapshot, then every event of the job's own
stream (``claimed``, ``progress``, ``preview``, ``retrying``, ``requeued``, ``cancel_requested``...)
and ends
after the terminal one (``completed``, ``failed`` or ``cancelled``), whose data carries the final
job. ``GET /v1/events`` follows the fleet event stream until the client leaves; both resume
after ``Last-Event-ID`` (header, or ``?last_event_id=`` for clients that cannot set headers).

Streams never read Redis themselves: each subscribes to the process's
:class:`~fleetq.gateway.fanout.StreamFanout` (one reader, one Redis connection, for every
stream), which takes a slot (``--max-streams``; 503 beyond it, before the stream opens). A
client that leaves cancels its handler, which frees the slot at once; a shutdown ends every
subscription. A comment line every 15 s keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Mapping
from typing import Any

from aiohttp import web

from fleetq.errors import InvalidArgument, RedisUnavailable
from fleetq.gateway import shapes
from fleetq.gateway.errors import error_body
from fleetq.gateway.fanout import StreamClosed, StreamLagged, Subscription
from fleetq.gateway.follower import entry_ms, last_event_id
from fleetq.gateway.jsonio import dumps
from fleetq.gateway.state import Gateway, base_url, gateway
from fleetq.model import JobStatus
from fleetq.validation import check_job_id, check_service

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

TERMINAL_EVENTS = ("completed", "failed", "cancelled")
KEEPALIVE_S = 15.0
KEEPALIVE = b": keepalive\n\n"
#: How long a stream cut off for lagging may take to send its error event and end.
LAG_GRACE_S = 5.0
#: Redis stream ids are two unsigned 64-bit numbers; a larger one would fail mid-stream.
_ID_PART_MAX = 2**64 - 1
_STREAM_ID = re.compile(r"^[0-9]{1,20}(-[0-9]{1,20})?$")


def sse(event: str, data: Mapping[str, Any], event_id: str | None = None) -> bytes:
    """One server-sent event. The JSON data never contains a newline."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {dumps(data)}\n\n".encode()


def _resume_id(request: web.Request) -> str | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if raw is None or raw == "":
        return None
    ms, _, seq = raw.partition("-")
    if not _STREAM_ID.fullmatch(raw) or int(ms) > _ID_PART_MAX or int(seq or 0) > _ID_PART_MAX:
        raise InvalidArgument(
            f"Last-Event-ID must be a stream id such as 1700000000000-0: {raw[:60]!r}"
        )
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


def _link_preview(data: dict[str, Any], url: str) -> None:
    """A ``preview`` event says a new live preview exists; the image stays out of the stream
    (a text stream of base64 would cost every follower the bytes of every frame) and is
    fetched from ``url`` by those who show it."""
    data.pop("ms", None)  # the same instant as ``at``
    try:
        data["size"] = int(data["size"])
    except (KeyError, ValueError):
        data.pop("size", None)
    data["url"] = url


def _drop_when_lagging(request: web.Request, sub: Subscription) -> None:
    """A client that stopped reading leaves its handler stuck in a write, where the lag error
    never reaches it: if the stream is still open :data:`LAG_GRACE_S` after the cut-off, the
    connection is closed, which ends the handler (the client may resume)."""
    transport = request.transport
    if transport is None:
        return

    def close_if_stuck() -> None:
        if not sub.closed:
            transport.close()

    def lagged() -> None:
        asyncio.get_running_loop().call_later(LAG_GRACE_S, close_if_stuck)

    sub.on_lagged = lagged


async def _run_stream(
    request: web.Request, response: web.StreamResponse, body: Awaitable[None]
) -> web.StreamResponse:
    """Run an open stream to its end. Once the headers are sent an error can no longer be a
    JSON answer: it ends the stream with an ``error`` event instead (the client may resume)."""
    try:
        await body
    except (ConnectionResetError, StreamClosed):
        pass  # the client left, or the server is shutting down
    except Exception as e:
        if isinstance(e, (RedisUnavailable, StreamLagged)):
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
    resume = _resume_id(request)
    store = gw.client.store
    # Take the stream position before the snapshot, so nothing between the two is missed.
    last_id = resume or await store.last_job_event_id(job_id)
    status = await gw.client.status(job_id)  # 404 before the stream opens
    url = base_url(request)
    if status.is_terminal:
        response = await _open(request)
        return await _run_stream(request, response, _finished_job(response, status, url))
    # Subscribing before the stream opens: a 503 for the stream over the cap is still JSON.
    with gw.fanout.subscribe(store.keys.job_events(job_id), last_id) as sub:
        _drop_when_lagging(request, sub)
        response = await _open(request)
        return await _run_stream(request, response, _follow_job(gw, response, sub, status, url))


async def _finished_job(response: web.StreamResponse, status: JobStatus, url: str) -> None:
    await response.write(sse("status", {"job": shapes.job(status, url)}))
    await response.write(sse(status.state.value, {"job": shapes.job(status, url)}))


async def _follow_job(
    gw: Gateway, response: web.StreamResponse, sub: Subscription, status: JobStatus, url: str
) -> None:
    await response.write(sse("status", {"job": shapes.job(status, url)}))
    job_id = status.id
    while not gw.closing.is_set():
        entries = await sub.next_batch(KEEPALIVE_S)
        if not entries:
            await response.write(KEEPALIVE)
            continue
        for entry_id, fields in entries:
            kind = fields.get("type", "event")
            data = _event_data(entry_id, fields)
            if kind == "preview":
                _link_preview(data, url + shapes.preview_path(job_id))
            if kind in TERMINAL_EVENTS:
                data["job"] = shapes.job(await gw.client.status(job_id), url)
            await response.write(sse(kind, data, entry_id))
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
    with gw.fanout.subscribe(gw.client.store.keys.events, last_id) as sub:
        _drop_when_lagging(request, sub)
        response = await _open(request)
        return await _run_stream(request, response, _follow_fleet(gw, response, sub, service))


async def _follow_fleet(
    gw: Gateway, response: web.StreamResponse, sub: Subscription, service: str | None
) -> None:
    while not gw.closing.is_set():
        entries = await sub.next_batch(KEEPALIVE_S)
        if not entries:
            await response.write(KEEPALIVE)
            continue
        chunk = b"".join(
            sse(fields.get("type", "event"), _event_data(entry_id, fields), entry_id)
            for entry_id, fields in entries
            if service is None or fields.get("service") == service
        )
        if chunk:
            await response.write(chunk)
