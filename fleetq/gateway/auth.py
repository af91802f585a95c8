"""Optional bearer-token authentication.

With no token configured the gateway is open (bind it to loopback, or put it behind a proxy that
authenticates). With tokens, every request except ``/healthz``, ``/readyz`` and
``/openapi.json`` must carry ``Authorization: Bearer <token>``; ``/metrics`` needs the token too
(Prometheus sends it with ``authorization: {credentials: ...}`` in the scrape config).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from fleetq.errors import InvalidArgument
from fleetq.gateway.errors import error_response

#: Paths anyone may read: liveness, readiness and the API description hold no fleet data.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})

#: The tokens of an application, encoded (set by ``create_app``; empty = open gateway).
TOKENS: web.AppKey[tuple[bytes, ...]] = web.AppKey("fleetq_tokens")

ENV_TOKENS = "FLEETQ_GATEWAY_TOKENS"
_CHALLENGE = 'Bearer realm="fleetq"'


def check_tokens(tokens: Iterable[str]) -> tuple[bytes, ...]:
    """Validate configured tokens and encode them for comparison."""
    out: list[bytes] = []
    for token in tokens:
        if not token or token != token.strip() or any(c.isspace() for c in token):
            raise InvalidArgument("gateway tokens must be non-empty and contain no whitespace")
        if len(token) < 16:
            raise InvalidArgument("gateway tokens must be at least 16 characters long")
        out.append(token.encode())
    return tuple(out)


def token_matches(presented: bytes, tokens: Sequence[bytes]) -> bool:
    """True when ``presented`` equals one of ``tokens``.

    Every token is compared with :func:`hmac.compare_digest`, and the loop never stops early,
    so the time taken says nothing about which token, or how much of one, matched.
    """
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(presented, token)
    return matched


def load_tokens(
    cli_tokens: Iterable[str] = (),
    tokens_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """Gather tokens from ``--token`` values, ``FLEETQ_GATEWAY_TOKENS`` (comma separated) and a
    file (one token per line; blank lines and ``#`` comments ignored). Duplicates are dropped."""
    env = os.environ if env is None else env
    found = [t.strip() for t in cli_tokens]
    found += [t.strip() for t in env.get(ENV_TOKENS, "").split(",") if t.strip()]
    if tokens_file:
        try:
            lines = Path(tokens_file).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise InvalidArgument(f"cannot read tokens file {tokens_file}: {e.strerror}") from e
        found += [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    unique = tuple(dict.fromkeys(found))
    check_tokens(unique)
    return unique


def _unauthorized(message: str, invalid: bool) -> web.Response:
    challenge = _CHALLENGE + (', error="invalid_token"' if invalid else "")
    return error_response(401, "Unauthorized", message, {"WWW-Authenticate": challenge})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    tokens: tuple[bytes, ...] = request.app[TOKENS]
    if not tokens or request.path in OPEN_PATHS:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return _unauthorized("send Authorization: Bearer <token>", invalid=False)
    if not token_matches(presented.strip().encode("utf-8", "replace"), tokens):
        return _unauthorized("the bearer token is not valid", invalid=True)
    return await handler(request)
