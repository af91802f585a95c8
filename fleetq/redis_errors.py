"""How redis-py errors become fleetq errors, for the sync and the asyncio code alike.

Connection-level failures become :class:`RedisUnavailable`, ACL refusals
:class:`PermissionDenied`, and the replies of a node in transition (a demoted primary, a
replica without its primary, a loading or out-of-memory node) :class:`RedisUnavailable`.
:func:`translate_errors` wraps a block of Redis calls in all of it; every message built here goes
through :func:`~fleetq.urls.scrub`, so credentials never leak.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from urllib.parse import unquote

import redis

from fleetq.config import Settings
from fleetq.errors import NotReplicated, PermissionDenied, RedisUnavailable
from fleetq.urls import (
    PLAIN_USER,
    is_sentinel_url,
    parse_sentinel_url,
    safe_url,
    scrub,
    split_authority,
)

#: Errors that mean "Redis is not reachable right now" (a cluster counts the shard that owns
#: the namespace being down, or a slot not covered during a failover).
CONNECTION_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.SlotNotCoveredError,
)

# Redis 7.0 reports an ACL refusal inside a script as "ERR The user executing the script
# can't ..."; 7.2+ as "NOPERM ..." or "ERR ACL failure in script ...".
_ACL_REFUSAL = re.compile(r"NOPERM|user executing the script can't|ACL failure", re.IGNORECASE)
_UNAVAILABLE_REPLIES = (
    "UNBLOCKED", "MASTERDOWN", "LOADING", "TRYAGAIN", "NOREPLICAS", "CLUSTERDOWN",
)  # fmt: skip


def _user(settings: Settings) -> str:
    url = settings.redis_url
    if is_sentinel_url(url):
        with contextlib.suppress(ValueError):
            return parse_sentinel_url(url).username or "default"
        return "default"
    parts = split_authority(url)
    user = unquote(parts[1].partition(":")[0]) if parts and parts[1] else ""
    return user if PLAIN_USER.fullmatch(user) and user else "default"


def unavailable(settings: Settings, error: BaseException) -> RedisUnavailable:
    """The :class:`RedisUnavailable` for a connection-level error, without credentials."""
    url = settings.redis_url
    reason = scrub(str(error).split("\n")[0] or type(error).__name__, url)
    where = safe_url(url)
    if isinstance(error, redis.exceptions.AuthenticationError):
        return RedisUnavailable(
            f"Redis at {where} refused the credentials of user {_user(settings)!r}: {reason}"
        )
    if isinstance(error, redis.exceptions.ReadOnlyError):
        return RedisUnavailable(
            f"Redis at {where} is a read-only replica (use the primary, or a "
            f"redis+sentinel:// URL to follow failovers): {reason}"
        )
    if str(error).startswith("NOREPLICAS"):
        return RedisUnavailable(
            f"Redis at {where} refuses writes: fewer replicas than min-replicas-to-write "
            f"are connected: {reason}"
        )
    if isinstance(error, redis.exceptions.OutOfMemoryError) or str(error).startswith("OOM"):
        return RedisUnavailable(
            f"Redis at {where} is out of memory and refuses writes "
            f"(maxmemory reached; fleetq needs maxmemory-policy noeviction): {reason}"
        )
    # redis-py puts the address in its messages, never the password; keep ours just as clean.
    return RedisUnavailable(f"cannot reach Redis at {where}: {reason}")


def permission_denied(
    settings: Settings, error: BaseException, action: str
) -> PermissionDenied | None:
    """The :class:`PermissionDenied` for an ACL refusal (NOPERM), or None for other errors."""
    text = str(error)
    if not isinstance(error, redis.exceptions.NoPermissionError) and not _ACL_REFUSAL.search(text):
        return None
    reason = scrub(text.split("\n")[0], settings.redis_url)
    reason = reason.split(" script: ")[0]  # the sha and line of the script say nothing more
    return PermissionDenied(
        f"Redis user {_user(settings)!r} is not allowed to {action} in namespace "
        f"{settings.namespace!r}: {reason} (see the ACL roles in docs/OPERATIONS.md)"
    )


def raise_for_reply(settings: Settings, error: redis.exceptions.ResponseError, action: str) -> None:
    """Raise the fleetq error for an error reply, if there is one: PermissionDenied for an
    ACL refusal; RedisUnavailable for replies of a node in transition (a demoted primary:
    READONLY, UNBLOCKED; a replica without its primary: MASTERDOWN; LOADING), for a primary
    short of replicas (NOREPLICAS, min-replicas-to-write) and for OOM.
    Returns for any other reply, which the caller re-raises."""
    denied = permission_denied(settings, error, action)
    if denied is not None:
        raise denied from error
    text = str(error)
    if isinstance(error, redis.exceptions.AskError) or text.startswith(("MOVED", "ASK ")):
        where = safe_url(settings.redis_url)
        raise RedisUnavailable(
            f"Redis at {where} is a Redis Cluster node that does not serve namespace "
            f"{settings.namespace!r} (its hash slot lives on another node): use a "
            "redis+cluster:// URL (docs/OPERATIONS.md section 8)"
        ) from error
    in_transition = (redis.exceptions.ReadOnlyError, redis.exceptions.OutOfMemoryError)
    if isinstance(error, in_transition) or text.startswith((*_UNAVAILABLE_REPLIES, "OOM")):
        raise unavailable(settings, error) from error


@contextlib.contextmanager
def translate_errors(settings: Settings, action: str = "run this command") -> Iterator[None]:
    """Turn redis-py connection errors into :class:`RedisUnavailable` and ACL refusals into
    :class:`PermissionDenied`."""
    try:
        yield
    except CONNECTION_ERRORS as e:
        raise unavailable(settings, e) from e
    except redis.exceptions.ResponseError as e:
        raise_for_reply(settings, e, action)
        raise


def check_replicated(settings: Settings, script: str, job_id: str, acked: int) -> None:
    """Raise :class:`NotReplicated` when fewer replicas than asked confirmed a write."""
    if acked >= settings.wait_replicas:
        return
    raise NotReplicated(
        f"the {script} of job {job_id} reached the Redis primary, but only {acked} of "
        f"{settings.wait_replicas} replica(s) confirmed it within {settings.wait_timeout_ms} ms "
        "(FLEETQ_WAIT_REPLICAS); a failover now could lose it",
        job_id=job_id,
        replicas=acked,
    )
