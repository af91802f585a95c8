"""What the sync and the asyncio Redis clients share: their options, derived from the settings,
the reporting of a bad URL, and the helpers of the script modes (EVALSHA_RO, WAIT).

The clients themselves are built in :mod:`fleetq._async.connection` (and its generated sync
twin); :mod:`fleetq.connection` documents the URLs.
"""

from __future__ import annotations

import re
import weakref
from typing import Any

import redis

from fleetq.config import Settings
from fleetq.errors import InvalidArgument, RedisUnavailable
from fleetq.urls import ClusterURL, SentinelURL, safe_url, scrub

#: Scripts after which ``Settings.wait_replicas`` waits for replicas: the writes a user is
#: told about (a job was accepted, a job completed).
WAITED_SCRIPTS = frozenset({"submit", "complete"})
#: Scripts that only read: run by EVALSHA_RO, so an ACL role needs only read access to the
#: keys they declare (EVALSHA asks for read and write access to every declared key).
READ_ONLY_SCRIPTS = frozenset({"status", "stats", "list_jobs", "eta"})
#: How often a Sentinel-backed client re-asks who the primary is (see ``FollowingPool``).
PRIMARY_RECHECK_S = 1.0


# -- client options ---------------------------------------------------------------------------
def client_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": settings.socket_timeout_s,
        "socket_connect_timeout": min(5.0, settings.socket_timeout_s),
        "socket_keepalive": True,
        "health_check_interval": 30,
        "decode_responses": False,
    }
    if settings.redis_url.lower().startswith("unix:"):
        del options["socket_keepalive"]  # a TCP option; Unix socket connections refuse it
    return options


def sentinel_kwargs(target: SentinelURL, settings: Settings) -> dict[str, Any]:
    """Options of the connections to the Sentinels: short timeouts, no retries (the next
    Sentinel is the retry), their own credentials, the same TLS as the data nodes."""
    kwargs: dict[str, Any] = {
        "socket_timeout": min(2.0, settings.socket_timeout_s),
        "socket_connect_timeout": min(2.0, settings.socket_timeout_s),
        "username": target.sentinel_username,
        "password": target.sentinel_password,
    }
    if target.ssl:
        kwargs.update(ssl=True, **target.ssl_options)
    return kwargs


def data_kwargs(target: SentinelURL, settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "db": target.db,
        "username": target.username,
        "password": target.password,
        **client_options(settings),
    }
    if target.ssl:
        kwargs.update(ssl=True, **target.ssl_options)
    return kwargs


def bad_url(settings: Settings, error: Exception) -> RedisUnavailable:
    reason = str(error).split("\n")[0] or type(error).__name__
    if "must specify one of the following schemes" in reason:  # redis-py omits Sentinel URLs
        reason = "the scheme must be redis://, rediss://, unix:// or redis+sentinel://"
    if "Port could not be cast" in reason:  # urllib quotes what it took for a port
        reason = "the port is not a number (percent-encode @ : / ? # in the password)"
    unknown = re.search(r"unexpected keyword argument '(\w+)'", reason)
    if unknown:
        reason = f"unknown parameter {unknown.group(1)!r}"
        if unknown.group(1).startswith("ssl"):
            reason += " (TLS parameters need a rediss:// URL)"
    url = settings.redis_url
    return RedisUnavailable(f"bad Redis URL {safe_url(url)}: {scrub(reason, url)}")


def check_url_options(pool: Any) -> None:
    """Build (without connecting) one connection, so an unknown URL parameter is reported now
    and not as a TypeError at the first command."""
    pool.connection_class(**pool.connection_kwargs)


def cluster_kwargs(target: ClusterURL, settings: Settings) -> dict[str, Any]:
    if settings.wait_replicas:
        raise InvalidArgument(
            "FLEETQ_WAIT_REPLICAS is not available with a redis+cluster:// URL (WAIT has no "
            "key to route it by); use 0"
        )
    kwargs: dict[str, Any] = {
        "username": target.username,
        "password": target.password,
        **client_options(settings),
    }
    if target.ssl:
        kwargs.update(ssl=True, **target.ssl_options)
    return kwargs


# -- read-only scripts (EVALSHA_RO) -----------------------------------------------------------

#: Clients whose server lacks EVALSHA_RO (Redis < 7, fakeredis): they run read-only scripts
#: by plain EVALSHA.
NO_EVALSHA_RO: weakref.WeakSet[Any] = weakref.WeakSet()


def unknown_command(error: redis.exceptions.ResponseError) -> bool:
    return "unknown command" in str(error).lower()


# -- replication acknowledgements (WAIT) -----------------------------------------------------


def waited_reply(reply: Any, acked: Any) -> tuple[Any, int]:
    """The script's reply and the replica count of a script + WAIT pipeline, or its error."""
    if isinstance(reply, Exception):
        raise reply
    if isinstance(acked, Exception):
        raise acked
    return reply, int(acked)


def demoted(acked: Any) -> bool:
    """WAIT answered that this node is a replica: the primary was demoted under us."""
    return isinstance(acked, redis.exceptions.ResponseError) and "replica" in str(acked)


DEMOTED = "the Redis primary was demoted to a replica (WAIT refused); reconnecting"
