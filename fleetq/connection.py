"""Redis connections: one place that builds clients from settings and names connection errors.

URLs (``Settings.redis_url``, ``FLEETQ_REDIS_URL``, ``--redis``)::

    redis://[[user]:password@]host[:port][/db]           plain TCP
    rediss://[[user]:password@]host[:port][/db]?ssl_ca_certs=/etc/fleetq/ca.pem
                                                         TLS (ssl_certfile, ssl_keyfile for a
                                                         client certificate; ssl_cert_reqs,
                                                         ssl_check_hostname)
    unix://[[user]:password@]/run/redis.sock[?db=0]      Unix socket
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db]
    rediss+sentinel://...                                the same over TLS (sentinels too)
    redis+cluster://[[user]:password@]host[:port][,host[:port]...]
    rediss+cluster://...?ssl_ca_certs=...                Redis Cluster (startup nodes)

A Sentinel URL lists the Sentinels (port 26379 when left out) and names the monitored service;
the user and password are those of the Redis primary and replicas. Sentinels with their own
password take ``?sentinel_password=...`` (and ``sentinel_username=...``); the TLS parameters
above apply to the data nodes and to the Sentinels. Clients ask the Sentinels for the primary
at every (re)connect and at most once a second besides, so they follow a failover.
Percent-encode ``@ : / ? #`` in a user or password. docs/OPERATIONS.md has the details.

A Cluster URL names one or more of the cluster's nodes; the client learns the slot map from
them and follows MOVED/ASK redirections and failovers. Every key of a namespace shares one hash
tag, so each script runs on the one shard that owns the namespace's slot. redis-py routes a
read-only script (EVALSHA_RO) after asking a node for its keys (COMMAND GETKEYS, one more round
trip), and ``wait_replicas`` is not available on a cluster.

Blocking calls (BZPOPMIN, XREAD BLOCK) always use a block timeout shorter than the socket
timeout, so a silently dead TCP connection surfaces as an error instead of a hang.

Credentials never leave this module in a message: :func:`~fleetq.urls.safe_url` masks them,
and every error text built here goes through :func:`~fleetq.urls.scrub`.
"""

from __future__ import annotations

import contextlib
import re
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, cast
from urllib.parse import unquote

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.asyncio.sentinel as aiosentinel
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.commands.core import AsyncScript, Script
from redis.retry import Retry

from fleetq.config import Settings
from fleetq.errors import InvalidArgument, NotReplicated, PermissionDenied, RedisUnavailable
from fleetq.urls import (
    PLAIN_USER,
    SENTINEL_SCHEMES,
    ClusterURL,
    SentinelURL,
    is_cluster_url,
    is_sentinel_url,
    parse_cluster_url,
    parse_sentinel_url,
    safe_url,
    scrub,
    split_authority,
)

__all__ = [
    "CONNECTION_ERRORS",
    "PRIMARY_RECHECK_S",
    "READ_ONLY_SCRIPTS",
    "SENTINEL_SCHEMES",
    "WAITED_SCRIPTS",
    "SentinelURL",
    "check_replicated",
    "connect",
    "connect_async",
    "is_sentinel_url",
    "parse_sentinel_url",
    "permission_denied",
    "raise_for_reply",
    "run_script_ro",
    "run_script_ro_async",
    "run_script_waited",
    "run_script_waited_async",
    "safe_url",
    "scrub",
    "translate_errors",
    "unavailable",
]

#: Errors that mean "Redis is not reachable right now" (a cluster counts the shard that owns
#: the namespace being down, or a slot not covered during a failover).
CONNECTION_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.SlotNotCoveredError,
)

#: Scripts after which ``Settings.wait_replicas`` waits for replicas: the writes a user is
#: told about (a job was accepted, a job completed).
WAITED_SCRIPTS = frozenset({"submit", "complete"})
#: Scripts that only read: run by EVALSHA_RO, so an ACL role needs only read access to the
#: keys they declare (EVALSHA asks for read and write access to every declared key).
READ_ONLY_SCRIPTS = frozenset({"status", "stats", "list_jobs", "eta"})
#: How often a Sentinel-backed client re-asks who the primary is (see :class:`_FollowingPool`).
PRIMARY_RECHECK_S = 1.0

# Redis 7.0 reports an ACL refusal inside a script as "ERR The user executing the script
# can't ..."; 7.2+ as "NOPERM ..." or "ERR ACL failure in script ...".
_ACL_REFUSAL = re.compile(r"NOPERM|user executing the script can't|ACL failure", re.IGNORECASE)
_UNAVAILABLE_REPLIES = (
    "UNBLOCKED", "MASTERDOWN", "LOADING", "TRYAGAIN", "NOREPLICAS", "CLUSTERDOWN",
)  # fmt: skip


# -- building clients -------------------------------------------------------------------------


def _options(settings: Settings) -> dict[str, Any]:
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


def _sentinel_kwargs(target: SentinelURL, settings: Settings) -> dict[str, Any]:
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


def _data_kwargs(target: SentinelURL, settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "db": target.db,
        "username": target.username,
        "password": target.password,
        **_options(settings),
    }
    if target.ssl:
        kwargs.update(ssl=True, **target.ssl_options)
    return kwargs


class _FollowingPool(redis.sentinel.SentinelConnectionPool):
    """Asks the Sentinels who the primary is at most every :data:`PRIMARY_RECHECK_S` when it
    hands out a connection, and drops idle connections to a former primary.

    redis-py alone asks only when it opens a connection, and an old primary demoted by
    ``SENTINEL FAILOVER`` keeps answering (and acknowledging writes that are lost) for about
    ten seconds, until the Sentinels turn it into a replica.
    """

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._next_check = 0.0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + PRIMARY_RECHECK_S
            # Closes the idle connections when the primary moved.
            with contextlib.suppress(*CONNECTION_ERRORS):
                self.get_master_address()  # type: ignore[no-untyped-call]
        return super().get_connection(*args, **kwargs)


class _AsyncFollowingPool(aiosentinel.SentinelConnectionPool):
    """The asyncio twin of :class:`_FollowingPool`."""

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._next_check = 0.0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + PRIMARY_RECHECK_S
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self.get_master_address()  # type: ignore[no-untyped-call]
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


class _SentinelRedis(redis.Redis):
    """A client of the current primary that also closes the Sentinel clients behind it."""

    sentinels: redis.sentinel.Sentinel | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.sentinels is not None:
                self.sentinels.close()
                self.sentinels = None


class _AsyncSentinelRedis(aioredis.Redis):
    sentinels: aiosentinel.Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinels is not None:
                await self.sentinels.aclose()
                self.sentinels = None


def _bad_url(settings: Settings, error: Exception) -> RedisUnavailable:
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


def _check_url_options(pool: Any) -> None:
    """Build (without connecting) one connection, so an unknown URL parameter is reported now
    and not as a TypeError at the first command."""
    pool.connection_class(**pool.connection_kwargs)


def _cluster_kwargs(target: ClusterURL, settings: Settings) -> dict[str, Any]:
    if settings.wait_replicas:
        raise InvalidArgument(
            "FLEETQ_WAIT_REPLICAS is not available with a redis+cluster:// URL (WAIT has no "
            "key to route it by); use 0"
        )
    kwargs: dict[str, Any] = {
        "username": target.username,
        "password": target.password,
        **_options(settings),
    }
    if target.ssl:
        kwargs.update(ssl=True, **target.ssl_options)
    return kwargs


def _connect_cluster(settings: Settings, retry: Retry) -> redis.Redis:
    target = parse_cluster_url(settings.redis_url)
    node = redis.cluster.ClusterNode
    nodes = [node(host, port) for host, port in target.nodes]  # type: ignore[no-untyped-call]
    try:
        client = redis.cluster.RedisCluster(
            startup_nodes=nodes, retry=retry, **_cluster_kwargs(target, settings)
        )
    except redis.exceptions.RedisClusterException as e:  # it reads the slot map at once
        raise unavailable(settings, e) from e
    # Duck-typed: the cluster client answers every command fleetq sends (one slot each).
    return cast(redis.Redis, client)


def _connect_cluster_async(settings: Settings, retry: AsyncRetry) -> aioredis.Redis:
    target = parse_cluster_url(settings.redis_url)
    nodes = [aiocluster.ClusterNode(host, port) for host, port in target.nodes]
    client = aiocluster.RedisCluster(
        startup_nodes=nodes, retry=retry, **_cluster_kwargs(target, settings)
    )
    return cast(aioredis.Redis, client)


def connect(settings: Settings) -> redis.Redis:
    """A synchronous client for the settings' Redis URL (no I/O until first use, except for
    a cluster, whose client reads the slot map at once)."""
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), 2)
    try:
        if is_cluster_url(settings.redis_url):
            return _connect_cluster(settings, retry)
        if is_sentinel_url(settings.redis_url):
            target = parse_sentinel_url(settings.redis_url)
            sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
                target.sentinels,
                sentinel_kwargs={
                    **_sentinel_kwargs(target, settings),
                    "retry": Retry(NoBackoff(), 0),
                },
            )
            client: _SentinelRedis = sentinel.master_for(  # type: ignore[no-untyped-call]
                target.service_name,
                redis_class=_SentinelRedis,
                connection_pool_class=_FollowingPool,
                retry=retry,
                **_data_kwargs(target, settings),
            )
            client.sentinels = sentinel
            return client
        plain = redis.Redis.from_url(settings.redis_url, retry=retry, **_options(settings))
        _check_url_options(plain.connection_pool)
        return plain
    except (ValueError, TypeError) as e:
        raise _bad_url(settings, e) from e


def connect_async(settings: Settings) -> aioredis.Redis:
    """An asyncio client for the settings' Redis URL (no I/O until first use)."""
    retry = AsyncRetry(ExponentialBackoff(cap=1.0, base=0.05), 2)
    try:
        if is_cluster_url(settings.redis_url):
            return _connect_cluster_async(settings, retry)
        if is_sentinel_url(settings.redis_url):
            target = parse_sentinel_url(settings.redis_url)
            sentinel_kwargs = _sentinel_kwargs(target, settings)
            sentinel_kwargs["retry"] = AsyncRetry(NoBackoff(), 0)
            sentinel = aiosentinel.Sentinel(  # type: ignore[no-untyped-call]
                target.sentinels, sentinel_kwargs=sentinel_kwargs
            )
            client: _AsyncSentinelRedis = sentinel.master_for(
                target.service_name,
                redis_class=_AsyncSentinelRedis,
                connection_pool_class=_AsyncFollowingPool,
                retry=retry,
                **_data_kwargs(target, settings),
            )
            client.sentinels = sentinel
            return client
        plain = aioredis.Redis.from_url(settings.redis_url, retry=retry, **_options(settings))
        _check_url_options(plain.connection_pool)
        return plain
    except (ValueError, TypeError) as e:
        raise _bad_url(settings, e) from e


# -- errors ---------------------------------------------------------------------------------


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


# -- read-only scripts (EVALSHA_RO) -----------------------------------------------------------

#: Clients whose server lacks EVALSHA_RO (Redis < 7, fakeredis): they run read-only scripts
#: by plain EVALSHA.
_NO_EVALSHA_RO: weakref.WeakSet[Any] = weakref.WeakSet()


def _unknown_command(error: redis.exceptions.ResponseError) -> bool:
    return "unknown command" in str(error).lower()


def run_script_ro(
    client: redis.Redis, script: Script, keys: Sequence[Any], args: Sequence[Any]
) -> Any:
    """Run a read-only script by EVALSHA_RO (loading it after NOSCRIPT)."""
    if client not in _NO_EVALSHA_RO:
        try:
            try:
                return client.evalsha_ro(script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                client.script_load(script.script)
                return client.evalsha_ro(script.sha, len(keys), *keys, *args)
        except redis.exceptions.ResponseError as e:
            if not _unknown_command(e):
                raise
            _NO_EVALSHA_RO.add(client)
    return script(keys=list(keys), args=list(args))


async def run_script_ro_async(
    client: aioredis.Redis, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
) -> Any:
    """The asyncio twin of :func:`run_script_ro`."""
    if client not in _NO_EVALSHA_RO:
        try:
            try:
                return await client.evalsha_ro(script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                await client.script_load(script.script)
                return await client.evalsha_ro(script.sha, len(keys), *keys, *args)
        except redis.exceptions.ResponseError as e:
            if not _unknown_command(e):
                raise
            _NO_EVALSHA_RO.add(client)
    return await script(keys=list(keys), args=list(args))


# -- replication acknowledgements (WAIT) -----------------------------------------------------


def _waited_reply(reply: Any, acked: Any) -> tuple[Any, int]:
    if isinstance(reply, Exception):
        raise reply
    if isinstance(acked, Exception):
        raise acked
    return reply, int(acked)


def _demoted(acked: Any) -> bool:
    """WAIT answered that this node is a replica: the primary was demoted under us."""
    return isinstance(acked, redis.exceptions.ResponseError) and "replica" in str(acked)


_DEMOTED = "the Redis primary was demoted to a replica (WAIT refused); reconnecting"


def run_script_waited(
    client: redis.Redis,
    script: Script,
    keys: Sequence[Any],
    args: Sequence[Any],
    settings: Settings,
) -> tuple[Any, int]:
    """Run ``script`` and ``WAIT wait_replicas wait_timeout_ms`` on one connection, in one
    round trip; returns the script's reply and how many replicas confirmed the write.

    WAIT counts the writes of its own connection, so the two commands share a pipeline. A
    script that wrote nothing on a demoted primary passes, but its WAIT is refused: the
    pool's idle connections are then dropped, so the next call asks the Sentinels again.
    """
    for attempt in range(2):
        with client.pipeline(transaction=False) as pipe:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.wait(settings.wait_replicas, settings.wait_timeout_ms)
            reply, acked = pipe.execute(raise_on_error=False)
        if isinstance(reply, redis.exceptions.NoScriptError) and not attempt:
            client.script_load(script.script)  # a restarted or failed-over Redis
            continue
        if _demoted(acked):
            client.connection_pool.disconnect(inuse_connections=False)
            raise redis.exceptions.ConnectionError(_DEMOTED)
        return _waited_reply(reply, acked)
    raise AssertionError("unreachable")


async def run_script_waited_async(
    client: aioredis.Redis,
    script: AsyncScript,
    keys: Sequence[Any],
    args: Sequence[Any],
    settings: Settings,
) -> tuple[Any, int]:
    """The asyncio twin of :func:`run_script_waited`."""
    for attempt in range(2):
        async with client.pipeline(transaction=False) as pipe:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.wait(settings.wait_replicas, settings.wait_timeout_ms)
            reply, acked = await pipe.execute(raise_on_error=False)
        if isinstance(reply, redis.exceptions.NoScriptError) and not attempt:
            await client.script_load(script.script)
            continue
        if _demoted(acked):
            await client.connection_pool.disconnect(inuse_connections=False)
            raise redis.exceptions.ConnectionError(_DEMOTED)
        return _waited_reply(reply, acked)
    raise AssertionError("unreachable")


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
