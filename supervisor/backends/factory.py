"""Pick the backend adapter for a service: ``comfyui`` or ``a1111``."""

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
    service: str, url: str, session: aiohttp.ClientSession | None = None, **options: Any
) -> Backend:
    """The adapter for ``service`` bound to the instance at ``url``.

    ``session`` is shared and left open by the adapter (None: it opens and closes its own).
    ``options`` are the adapter's keyword options (timeouts, intervals; see
    :class:`ComfyUIBackend` and :class:`A1111Backend`); an unknown one raises ``TypeError``.
    """
    adapter = ADAPTERS.get(service)
    if adapter is None:
        raise InvalidArgument(
            f"no backend adapter for service {service!r} (adapters: {', '.join(ADAPTERS)})"
        )
    return adapter(url, session, **options)
