"""HTTP plumbing of the ComfyUI adapter: one session, timeouts, and answers sorted into
"unreachable" (refused, reset, timed out, 502/503/504) and everything else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from .comfyui_protocol import Malformed

NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class Unreachable(Exception):
    """No usable answer: refused, reset, timed out, or 502/503/504 (starting, proxy)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        #: No answer in time: the request may still have reached the server.
        self.timed_out = timed_out


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    def json(self, what: str, *, ok_only: bool = True) -> Any:
        """The body as JSON; Malformed when it is not (or, with ``ok_only``, not a 200)."""
        if ok_only and self.status != 200:
            raise Malformed(f"{what} answered HTTP {self.status}: {self.body[:120]!r}")
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise Malformed(
                f"{what} answered HTTP {self.status} {self.content_type} that is not JSON: "
                f"{self.body[:120]!r}"
            ) from e


def describe(e: BaseException, timeout_s: float) -> str:
    """A short reason for a network error, for logs and ``BackendProbe.detail``."""
    if isinstance(e, asyncio.TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"cannot connect: {e.os_error.strerror or e}"
    return str(e) or type(e).__name__


class ComfyHttp:
    """Requests to one ComfyUI at ``url``, through the given session or an own one."""

    def __init__(self, url: str, session: aiohttp.ClientSession | None) -> None:
        self.url = url
        self._session = session
        self._owns_session = session is None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def aclose(self) -> None:
        """Close the session if it is the adapter's own."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        method: str,
        path: str,
        timeout_s: float,
        *,
        data: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request; raises :class:`Unreachable` when no usable answer came."""
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self.session().request(
                method,
                self.url + path,
                data=data,
                params=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                body = await response.read()
        except NETWORK_ERRORS as e:
            timed_out = isinstance(e, asyncio.TimeoutError)
            message = f"{method} {path}: {describe(e, timeout_s)}"
            raise Unreachable(message, timed_out=timed_out) from e
        if response.status in (502, 503, 504):
            raise Unreachable(f"{method} {path}: HTTP {response.status}")
        return Answer(response.status, response.content_type, body)
