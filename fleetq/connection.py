"""Redis connections: one place that builds clients from settings and names connection errors.

Blocking calls (BZPOPMIN, XREAD BLOCK) always use a block timeout shorter than the socket
timeout, so a silently dead TCP connection surfaces as an error instead of a hang.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from fleetq.config import Settings
from fleetq.errors import RedisUnavailable

CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def safe_url(url: str) -> str:
    """The URL with any password replaced by ``***``, fit for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None and not parts.username:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    auth = f"{user}:***@" if parts.password is not None else f"{user}@"
    return urlunsplit((parts.scheme, auth + host, parts.path, parts.query, parts.fragment))


def _options(settings: Settings) -> dict[str, object]:
    return {
        "socket_timeout": settings.socket_timeout_s,
        "socket_connect_timeout": min(5.0, settings.socket_timeout_s),
        "socket_keepalive": True,
        "health_check_interval": 30,
        "decode_responses": False,
    }


def connect(settings: Settings) -> redis.Redis:
    """A synchronous client for the settings' Redis URL (no I/O until first use)."""
    try:
        return redis.Redis.from_url(
            settings.redis_url,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 2),
            **_options(settings),  # type: ignore[arg-type]
        )
    except ValueError as e:
        raise RedisUnavailable(f"bad Redis URL {safe_url(settings.redis_url)}: {e}") from e


def connect_async(settings: Settings) -> aioredis.Redis:
    """An asyncio client for the settings' Redis URL (no I/O until first use)."""
    from redis.asyncio.retry import Retry as AsyncRetry

    try:
        return aioredis.Redis.from_url(
            settings.redis_url,
            retry=AsyncRetry(ExponentialBackoff(cap=1.0, base=0.05), 2),
            **_options(settings),  # type: ignore[arg-type]
        )
    except ValueError as e:
        raise RedisUnavailable(f"bad Redis URL {safe_url(settings.redis_url)}: {e}") from e


def unavailable(settings: Settings, error: BaseException) -> RedisUnavailable:
    reason = str(error).split("\n")[0] or type(error).__name__
    # redis-py puts the address in its messages, never the password; keep ours just as clean.
    return RedisUnavailable(f"cannot reach Redis at {safe_url(settings.redis_url)}: {reason}")


@contextlib.contextmanager
def translate_errors(settings: Settings) -> Iterator[None]:
    """Turn redis-py connection errors into :class:`RedisUnavailable`."""
    try:
        yield
    except CONNECTION_ERRORS as e:
        raise unavailable(settings, e) from e
