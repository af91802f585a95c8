"""Protection against other web sites: what a browser may do to a gateway its user can reach.

A page on another site can make the user's browser send "simple" requests (``text/plain`` or
form bodies, no custom headers) to any address, including a gateway on loopback, and a
DNS-rebinding page can even read the answers under its own host name. So:

- writes (any method but GET, HEAD and OPTIONS) that carry an ``Origin`` header are refused with
  403 unless the origin is the gateway's public URL or one allowed by configuration; browsers
  always send ``Origin`` on cross-origin writes, other clients usually send none;
- on a gateway without tokens, the ``Host`` header must name the gateway (its loopback names,
  its bind address, the address the client connected to, the public URL's host, or a
  configured name), else 421: a rebinding page's requests carry the attacker's host name;
- JSON bodies must be sent as ``application/json`` (415 otherwise, see ``jsonio.read_object``),
  which a simple request cannot do without a CORS preflight, and the gateway answers no
  preflight. The one exception is a submit with input files as ``multipart/form-data``
  (``POST /v1/jobs``, see ``uploads``), which any page can send: the ``Origin`` rule above is
  what keeps other sites' pages from submitting.

``/healthz``, ``/readyz`` and ``/openapi.json`` stay open to any ``Host``: probes often use an
IP address, and they hold no fleet data.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from fleetq.gateway.auth import OPEN_PATHS, TOKENS
from fleetq.gateway.errors import error_response
from fleetq.gateway.options import host_of
from fleetq.gateway.state import OPTIONS

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    options = request.app[OPTIONS]
    origin = request.headers.get("Origin")
    cross_site = origin is not None and origin.rstrip("/") not in options.origins
    if cross_site and request.method not in SAFE_METHODS:
        return error_response(
            403,
            "Forbidden",
            f"writes from the browser origin {str(origin)[:100]!r} are not allowed; "
            "allow it with --allow-origin",
        )
    if not request.app[TOKENS] and request.path not in OPEN_PATHS:
        raw = request.headers.get("Host")
        host = None if raw is None else host_of(raw)
        if raw is not None and host not in options.host_names and host != _local_address(request):
            return error_response(
                421,
                "MisdirectedRequest",
                f"this gateway does not answer to the host name {raw[:100]!r}; "
                "add it with --allow-host or --public-url",
            )
    return await handler(request)


def _local_address(request: web.Request) -> str | None:
    """The address the client connected to. A ``Host`` naming it is no rebinding: such a page's
    requests carry the attacker's host name, never the gateway's IP address."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return str(sockname[0]).partition("%")[0].lower() if sockname else None
