"""Builds Redis clients from settings and runs scripts in their special modes.

The public module is :mod:`fleetq.connection`, which documents the URL forms and names the
asyncio functions ``connect_async``, ``run_script_ro_async`` and ``run_script_waited_async``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis
from redis.backoff import ExponentialBackoff, NoBackoff

from fleetq._async_support import (
    AsyncClusterNode,
    AsyncRedis,
    AsyncRedisCluster,
    AsyncRetry,
    AsyncScript,
    AsyncSentinel,
    _AsyncFollowingPool,
    _AsyncSentinelRedis,
)
from fleetq.config import Settings
from fleetq.redis_errors import unavailable
from fleetq.redis_options import (
    DEMOTED,
    NO_EVALSHA_RO,
    bad_url,
    check_url_options,
    client_options,
    cluster_kwargs,
    data_kwargs,
    demoted,
    sentinel_kwargs,
    unknown_command,
    waited_reply,
)
from fleetq.urls import is_cluster_url, is_sentinel_url, parse_cluster_url, parse_sentinel_url


def _connect_cluster(settings: Settings, retry: AsyncRetry) -> AsyncRedis:
    target = parse_cluster_url(settings.redis_url)
    nodes = [AsyncClusterNode(host, port) for host, port in target.nodes]  # type: ignore[no-untyped-call]
    try:
        client = AsyncRedisCluster(
            startup_nodes=nodes, retry=retry, **cluster_kwargs(target, settings)
        )
    except redis.exceptions.RedisClusterException as e:  # a sync client reads the slot map
        raise unavailable(settings, e) from e
    # Duck-typed: the cluster client answers every command fleetq sends (one slot each).
    return cast(AsyncRedis, client)


def connect(settings: Settings) -> AsyncRedis:
    """A client for the settings' Redis URL (no I/O until first use, except for a synchronous
    cluster client, which reads the slot map at once)."""
    retry = AsyncRetry(ExponentialBackoff(cap=1.0, base=0.05), 2)
    try:
        if is_cluster_url(settings.redis_url):
            return _connect_cluster(settings, retry)
        if is_sentinel_url(settings.redis_url):
            target = parse_sentinel_url(settings.redis_url)
            sentinel = AsyncSentinel(  # type: ignore[no-untyped-call]
                target.sentinels,
                sentinel_kwargs={
                    **sentinel_kwargs(target, settings),
                    "retry": AsyncRetry(NoBackoff(), 0),
                },
            )
            client: _AsyncSentinelRedis = sentinel.master_for(  # type: ignore[no-untyped-call]
                target.service_name,
                redis_class=_AsyncSentinelRedis,
                connection_pool_class=_AsyncFollowingPool,
                retry=retry,
                **data_kwargs(target, settings),
            )
            client.sentinels = sentinel
            return client
        plain = AsyncRedis.from_url(settings.redis_url, retry=retry, **client_options(settings))
        check_url_options(plain.connection_pool)
        return plain
    except (ValueError, TypeError) as e:
        raise bad_url(settings, e) from e


async def run_script_ro(
    client: AsyncRedis, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]
) -> Any:
    """Run a read-only script by EVALSHA_RO (loading it after NOSCRIPT); by plain EVALSHA on
    a server without EVALSHA_RO (Redis < 7, fakeredis)."""
    if client not in NO_EVALSHA_RO:
        try:
            try:
                return await client.evalsha_ro(script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                await client.script_load(script.script)
                return await client.evalsha_ro(script.sha, len(keys), *keys, *args)
        except redis.exceptions.ResponseError as e:
            if not unknown_command(e):
                raise
            NO_EVALSHA_RO.add(client)
    return await script(keys=list(keys), args=list(args))


async def run_script_waited(
    client: AsyncRedis,
    script: AsyncScript,
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
        async with client.pipeline(transaction=False) as pipe:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.wait(settings.wait_replicas, settings.wait_timeout_ms)
            reply, acked = await pipe.execute(raise_on_error=False)
        if isinstance(reply, redis.exceptions.NoScriptError) and not attempt:
            await client.script_load(script.script)  # a restarted or failed-over Redis
            continue
        if demoted(acked):
            await client.connection_pool.disconnect(inuse_connections=False)
            raise redis.exceptions.ConnectionError(DEMOTED)
        return waited_reply(reply, acked)
    raise AssertionError("unreachable")
