"""WebSocket clients of the fake ComfyUI and the routing of messages to them.

Mirrors ``server.py`` of ComfyUI, bugs included:

- sockets are kept in a dict keyed by ``clientId`` (the ``sid``); a second connection with the
  same id replaces the first, and when the *first* one closes it removes the entry, so the
  live second socket receives nothing more, not even ``status``;
- messages go through one outbox drained by one publisher task, so they leave in the order
  they were produced; ``sid=None`` means every socket;
- nothing is buffered for a client that is not connected at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
SERVER_FEATURES: dict[str, Any] = {"supports_preview_metadata": True, "max_upload_size": 104857600}

_SEND_ERRORS = (aiohttp.ClientError, ConnectionError, RuntimeError)


@dataclass
class _Client:
    ws: web.WebSocketResponse
    feature_flags: dict[str, Any] = field(default_factory=dict)


class SocketHub:
    """Connected sockets by sid, plus who owns the running prompt (for reconnects)."""

    def __init__(self, queue_info: Callable[[], dict[str, Any]]) -> None:
        self._queue_info = queue_info
        self._clients: dict[str, _Client] = {}
        self._outbox: asyncio.Queue[tuple[str | int, Any, str | None]] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None
        self._open: dict[web.WebSocketResponse, web.Request] = {}
        self.owner_sid: str | None = None
        """``client_id`` of the running prompt (``server.client_id`` in ComfyUI)."""
        self.last_node_id: str | None = None
        """Node last announced with ``executing``; replayed to the owner on reconnect."""
        self._changed = asyncio.Event()

    @property
    def sids(self) -> list[str]:
        return list(self._clients)

    async def wait_for(
        self, predicate: Callable[[list[str]], bool], timeout_s: float | None = 10.0
    ) -> None:
        """Wait until ``predicate(sids)`` holds; re-checked whenever a socket comes or goes."""

        async def _wait() -> None:
            while not predicate(self.sids):
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout_s)

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def supports(self, sid: str | None, feature: str) -> bool:
        client = self._clients.get(sid) if sid is not None else None
        return client is not None and bool(client.feature_flags.get(feature))

    def send(self, event: str | int, data: Any, sid: str | None = None) -> None:
        """Queue a JSON message (``event`` str) or binary frame (``event`` int, ``data`` bytes)
        for ``sid``, or for everyone when ``sid`` is None."""
        self._outbox.put_nowait((event, data, sid))

    def start(self) -> None:
        self._publisher = asyncio.create_task(self._publish(), name="fake-comfyui-publisher")

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None
        await self.drop_all()

    def clear_outbox(self) -> None:
        while not self._outbox.empty():
            self._outbox.get_nowait()

    async def drop_all(self, abrupt: bool = False) -> int:
        """Close every open socket; ``abrupt`` cuts the TCP connection without a close frame."""
        sockets = list(self._open.items())
        closing = []
        for ws, request in sockets:
            transport = request.transport
            if abrupt and transport is not None:
                transport.abort()
            else:
                closing.append(self._close(ws))
        await asyncio.gather(*closing)
        return len(sockets)

    @staticmethod
    async def _close(ws: web.WebSocketResponse) -> None:
        with contextlib.suppress(*_SEND_ERRORS):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"fake: dropped")

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """``GET /ws?clientId=...``"""
        # A short close timeout: a drop must not wait 10 s for a client that never answers.
        ws = web.WebSocketResponse(timeout=2.0)
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            self._clients.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        self._clients[sid] = _Client(ws)
        self._open[ws] = request
        self._touch()
        log.debug("websocket %s connected", sid)
        try:
            await self._send_json(ws, "status", {"status": self._queue_info(), "sid": sid})
            if self.owner_sid == sid and self.last_node_id is not None:
                await self._send_json(ws, "executing", {"node": self.last_node_id})
            first_message = True
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                with contextlib.suppress(ValueError, AttributeError):
                    data = json.loads(message.data)
                    if first_message and data.get("type") == "feature_flags":
                        client = self._clients.get(sid)
                        if client is not None and client.ws is ws:
                            client.feature_flags = dict(data.get("data") or {})
                        await self._send_json(ws, "feature_flags", SERVER_FEATURES)
                first_message = False
        finally:
            # ComfyUI pops by sid without checking which socket it is: the duplicate-clientId bug.
            self._clients.pop(sid, None)
            self._open.pop(ws, None)
            self._touch()
            log.debug("websocket %s closed", sid)
        return ws

    async def _publish(self) -> None:
        while True:
            event, data, sid = await self._outbox.get()
            if sid is None:
                targets = [client.ws for client in self._clients.values()]
            else:
                client = self._clients.get(sid)
                targets = [client.ws] if client is not None else []
            for ws in targets:
                if isinstance(event, int):
                    await self._send_bytes(ws, struct.pack(">I", event) + data)
                else:
                    await self._send_json(ws, event, data)

    @staticmethod
    async def _send_json(ws: web.WebSocketResponse, event: str, data: Any) -> None:
        with contextlib.suppress(*_SEND_ERRORS):
            await ws.send_str(json.dumps({"type": event, "data": data}))

    @staticmethod
    async def _send_bytes(ws: web.WebSocketResponse, payload: bytes) -> None:
        with contextlib.suppress(*_SEND_ERRORS):
            await ws.send_bytes(payload)
