"""HTTP plumbing of the ComfyUI adapter: the shared :mod:`.http` layer, with answers whose
:meth:`ComfyAnswer.json` raises the ComfyUI protocol's :class:`Malformed`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from .comfyui_protocol import Malformed
from .http import NETWORK_ERRORS, Answer, HttpClient, Unreachable, describe

__all__ = ["NETWORK_ERRORS", "ComfyAnswer", "ComfyHttp", "Unreachable", "describe"]


@dataclass(frozen=True)
class ComfyAnswer(Answer):
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


class ComfyHttp(HttpClient[ComfyAnswer]):
    """Requests to one ComfyUI at ``url``, through the given session or an own one."""

    def __init__(self, url: str, session: aiohttp.ClientSession | None) -> None:
        super().__init__(url, session, ComfyAnswer)
