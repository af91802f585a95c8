"""The one WebSocket an adapter keeps to its ComfyUI, and the task that reads it.

Every connection gets a fresh ``clientId`` (uuid4 hex): ComfyUI keeps sockets in a dict by
``clientId``, and when a stale socket with the same id closes after its replacement connected,
the server forgets the id and the live socket receives nothing more (the duplicate-clientId
bug of the captures). A fresh id per connection cannot collide with a stale one.

The reader hands JSON frames to the run that listens (one at a time) and drops them between
runs. Binary preview frames reach it as ``PREVIEW`` events (data ``{"frame": PreviewFrame}``);
other or malformed binary frames are dropped. A new socket first announces
``supports_preview_metadata``, so each preview names its prompt. When the socket ends on its
own, the listener gets a ``CLOSED`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import aiohttp

from fleetq.urls import safe_url

from .comfyui_previews import FEATURE_FLAGS, parse_binary_frame
from .comfyui_protocol import parse_frame

log = logging.getLogger(__name__)

#: The event type a listener receives when the socket ended (dropped, server gone).
CLOSED = "fleetq.closed"
#: The event type of a preview image (data ``{"frame": PreviewFrame}``).
PREVIEW = "fleetq.preview"
Event = tuple[str, Mapping[str, Any]]
T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout_s: float) -> T:
    """``asyncio.wait_for`` without its Python 3.11 flaw: when the awaited thing completes
    in the same loop iteration as the caller is cancelled, 3.11's ``wait_for`` returns the
    result and the cancellation is lost. ``asyncio.wait`` never swallows it."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    finally:
        if not task.done():
            task.add_done_callback(_retrieve)
            task.cancel()
    if not done:
        await asyncio.wait({task})
        raise asyncio.TimeoutError
    return task.result()


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark the outcome of an abandoned task as seen (no "exception never retrieved")."""
    if not task.cancelled():
        task.exception()


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Inbox:
    """The frames of one run. ``get`` waits on a plain future with a timer instead of
    ``asyncio.wait_for`` (see :func:`within`), so cancelling the run always lands."""

    def __init__(self) -> None:
        self._items: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Event) -> None:
        self._items.append(item)
        if self._waiter is not None:
            _release(self._waiter)

    async def get(self, timeout_s: float) -> Event | None:
        """The next frame, or None after ``timeout_s`` without one."""
        if not self._items and timeout_s > 0:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiter = waiter
            timer = loop.call_later(timeout_s, _release, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        return self._items.popleft() if self._items else None


class EventSocket:
    """``GET /ws?clientId=...`` of one ComfyUI; ``connect`` (re)opens it with a new id."""

    def __init__(self, ws_url: str, *, heartbeat_s: float, connect_timeout_s: float) -> None:
        self._ws_url = ws_url
        self._heartbeat_s = heartbeat_s
        self._connect_timeout_s = connect_timeout_s
        self._ws: aiohttp.ClientWebSocketResponse[bool] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listener: Inbox | None = None
        #: The ``clientId`` of the open socket; what ``POST /prompt`` must send as client_id.
        self.client_id: str | None = None

    @property
    def connected(self) -> bool:
        return (
            self._ws is not None
            and not self._ws.closed
            and self._reader is not None
            and not self._reader.done()
        )

    async def connect(self, session: aiohttp.ClientSession) -> None:
        """Close the old socket, open a new one under a new ``clientId`` and wait for the
        server's first ``status`` frame (sent once the id is registered, so a prompt posted
        afterwards is routed to this socket). Raises ``aiohttp.ClientError``, ``OSError`` or
        ``asyncio.TimeoutError``."""
        await self.close()
        client_id = uuid.uuid4().hex
        ws_timeout: Any = self._connect_timeout_s  # aiohttp < 3.11: the close timeout
        if hasattr(aiohttp, "ClientWSTimeout"):
            ws_timeout = aiohttp.ClientWSTimeout(ws_close=self._connect_timeout_s)
        ws = await within(
            session.ws_connect(
                f"{self._ws_url}?clientId={client_id}",
                heartbeat=self._heartbeat_s,
                timeout=ws_timeout,
            ),
            self._connect_timeout_s,
        )
        try:
            first = await ws.receive(timeout=self._connect_timeout_s)
            if first.type != aiohttp.WSMsgType.TEXT:
                raise aiohttp.ClientError(f"WebSocket opened with a {first.type.name} frame")
            await ws.send_str(FEATURE_FLAGS)
        except BaseException:
            await ws.close()
            raise
        self._ws = ws
        self.client_id = client_id
        self._reader = asyncio.create_task(self._read(ws), name=f"comfyui-ws-{client_id[:8]}")
        log.debug("comfyui websocket %s connected to %s", client_id, safe_url(self._ws_url))

    def listen(self, queue: Inbox) -> None:
        """Send this socket's frames to ``queue`` (a ``CLOSED`` event at once if not open)."""
        self._listener = queue
        if not self.connected:
            queue.put_nowait((CLOSED, {}))

    def unlisten(self, queue: Inbox) -> None:
        if self._listener is queue:
            self._listener = None

    async def close(self) -> None:
        """Stop the reader and close the socket; safe to call at any time."""
        reader, ws = self._reader, self._ws
        self._reader = self._ws = None
        self.client_id = None
        if reader is not None and not reader.done():
            reader.cancel()
            # ``wait`` rather than ``await reader``: our own cancellation must still propagate.
            await asyncio.wait({reader})
        if ws is not None and not ws.closed:
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                await ws.close()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    frame = parse_frame(message.data)
                    if frame is not None and self._listener is not None:
                        self._listener.put_nowait(frame)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    preview = parse_binary_frame(message.data)
                    if preview is not None and self._listener is not None:
                        self._listener.put_nowait((PREVIEW, {"frame": preview}))
                elif message.type == aiohttp.WSMsgType.ERROR:
                    break
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            log.debug("comfyui websocket read failed: %r", e)
        # Not cancelled: the socket ended by itself.
        log.info(
            "comfyui websocket %s to %s closed (code %s)",
            self.client_id,
            safe_url(self._ws_url),
            ws.close_code,
        )
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            await ws.close()
        if self._ws is ws and self._listener is not None:
            self._listener.put_nowait((CLOSED, {}))
