"""Pick the backend adapter for a service: by its configured ``adapter``, else by its name."""

from __future__ import annotations

from typing import Any

import aiohttp

from fleetq.errors import InvalidArgument

from .a1111 import A1111Backend
from .base import Backend
from .comfyui import ComfyUIBackend

ADAPTERS: dict[str, type[ComfyUIBackend] | type[A1111Backend]] = {
    "comfyui": ComfyUIBackend,
    "a1111": A1111Backend,
}


def make_backend(
    service: str,
    url: str,
    session: aiohttp.ClientSession | None = None,
    *,
    adapter: str | None = None,
    **options: Any,
) -> Backend:
    """The adapter for ``service`` bound to the instance at ``url``.

    ``adapter`` (``comfyui`` or ``a1111``) defaults to the service's name, so a service named
    after its adapter needs none. ``session`` is shared and left open by the adapter (None: it
    opens and closes its own). ``options`` are the adapter's keyword options (timeouts,
    intervals; see :mod:`supervisor.backends.options`); an unknown one raises ``TypeError``.
    """
    kind = adapter or service
    chosen = ADAPTERS.get(kind)
    if chosen is None:
        raise InvalidArgument(
            f"no backend adapter {kind!r} for service {service!r} (adapters: {', '.join(ADAPTERS)})"
        )
    return chosen(url, session, **options)
