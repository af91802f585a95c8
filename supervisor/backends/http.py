"""The HTTP layer shared by the backend adapters: one session, timeouts, optional fixed
headers (credentials), and answers sorted into "unreachable" (refused, reset, timed out,
502/503/504) and everything else, which the adapter reads as its backend's protocol."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp

NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class Unreachable(Exception):
    """No usable answer: refused, reset, timed out, or 502/503/504 (starting, proxy)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        #: No answer in time: the request may still have reached the server.
        self.timed_out = timed_out


@dataclass(frozen=True)
class Answer:
    """A response that came back: its status, content type and whole body."""

    status: int
    content_type: str
    body: bytes

    def parsed(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def describe(e: BaseException, timeout_s: float | None) -> str:
    """A short reason for a network error, for logs and ``BackendProbe.detail``."""
    if isinstance(e, asyncio.TimeoutError):
        return f"no answer within {timeout_s:g} s" if timeout_s else "timed out"
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"cannot connect: {e.os_error.strerror or e}"
    return str(e) or type(e).__name__


AnswerT = TypeVar("AnswerT", bound=Answer)


class HttpClient(Generic[AnswerT]):
    """Requests to one backend at ``url``, through the given session or an own one.

    Answers are made as ``answer_type`` (an :class:`Answer` subclass that reads the backend's
    protocol). ``headers`` go with every request (e.g. ``Authorization``);
    ``connect_timeout_s`` bounds connecting apart from the whole request (None: only the
    request's own timeout).
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession | None,
        answer_type: type[AnswerT],
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        self.url = url
        self._answer_type = answer_type
        self._session = session
        self._owns_session = session is None
        self._headers = dict(headers or {})
        self._connect_timeout_s = connect_timeout_s

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def aclose(self) -> None:
        """Close the session if it is the client's own."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        method: str,
        path: str,
        timeout_s: float | None,
        *,
        data: str | None = None,
        params: Mapping[str, str] | None = None,
        form: aiohttp.FormData | None = None,
    ) -> AnswerT:
        """One request (``timeout_s`` None: no total limit); raises :class:`Unreachable`
        when no usable answer came. ``data`` is a JSON body; ``form`` a multipart one."""
        headers = dict(self._headers)
        payload: str | aiohttp.FormData | None = data
        if data is not None:
            headers["Content-Type"] = "application/json"
        elif form is not None:
            payload = form  # aiohttp sets the multipart Content-Type with its boundary
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=self._connect_timeout_s)
        try:
            async with self.session().request(
                method,
                self.url + path,
                data=payload,
                params=params,
                headers=headers or None,
                timeout=timeout,
            ) as response:
                body = await response.read()
        except NETWORK_ERRORS as e:
            timed_out = isinstance(e, asyncio.TimeoutError)
            message = f"{method} {path}: {describe(e, timeout_s)}"
            raise Unreachable(message, timed_out=timed_out) from e
        if response.status in (502, 503, 504):
            raise Unreachable(f"{method} {path}: HTTP {response.status}")
        return self._answer_type(response.status, response.content_type, body)
