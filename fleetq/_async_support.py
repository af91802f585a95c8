"""What only the asyncio side has: the names that :mod:`fleetq._async` imports here, and the
generated :mod:`fleetq._sync` imports from :mod:`fleetq._sync_support` under the same names.

``scripts/unasync.py`` maps ``AsyncRedis`` to ``Redis`` (and the like), removes the
``cancel_safe(...)`` wrapper, and turns ``await sleep(...)`` into ``sleep(...)``; this module
and its sync twin are written by hand because their bodies truly differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.commands.core import AsyncScript

from fleetq.model import JobStatus
from fleetq.redis_errors import CONNECTION_ERRORS
from fleetq.redis_options import PRIMARY_RECHECK_S

__all__ = [
    "AsyncClusterNode",
    "AsyncProgressCallback",
    "AsyncRedis",
    "AsyncRedisCluster",
    "AsyncRetry",
    "AsyncScript",
    "AsyncSentinel",
    "_AsyncFollowingPool",
    "_AsyncSentinelRedis",
    "blocking",
    "cancel_safe",
    "notify",
    "sleep",
    "tracking_calls",
    "when_ended",
]

T = TypeVar("T")

#: Called with a fresh status while a job is waited for: a plain or a coroutine function.
AsyncProgressCallback = Callable[[JobStatus], Awaitable[None] | None]

sleep = asyncio.sleep


async def blocking(call: Callable[[], T]) -> T:
    """Run a call that reads files (input paths of a submit) in a thread, off the loop."""
    return await asyncio.to_thread(call)


async def notify(on_progress: AsyncProgressCallback, status: JobStatus) -> None:
    """Call a progress callback, awaiting it when it is a coroutine function."""
    maybe = on_progress(status)
    if maybe is not None:
        await maybe


async def cancel_safe(awaitable: Awaitable[T]) -> T:
    """Await a redis-py call so that cancelling the caller always cancels the caller.

    A task cancelled while redis-py (5.x to 8.x) reads a reply can lose the cancellation and
    go on waiting (seen with blocking reads: the cancelled task kept running). The call runs
    in its own task; the caller waits on it through a shield, so the caller's cancellation is
    always delivered; the orphaned call is then cancelled and left to end on its own.
    """
    task = asyncio.ensure_future(awaitable)
    tracked = _tracked.get()
    if tracked is not None:
        tracked.add(task)
        # The task's context holds the set that holds the task: a reference cycle that only
        # the garbage collector would free (a Task, its context and the set, for every call a
        # supervisor makes). Leaving the set when the call ends breaks it.
        task.add_done_callback(tracked.discard)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_consume_result)
        raise


def _consume_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


#: Where :func:`cancel_safe` records the redis-py calls it starts, inside :func:`tracking_calls`.
_tracked: ContextVar[set[asyncio.Future[Any]] | None] = ContextVar("fleetq_tracked", default=None)


@contextlib.contextmanager
def tracking_calls() -> Iterator[set[asyncio.Future[Any]]]:
    """Collect the redis-py calls that :func:`cancel_safe` starts in this block.

    A caller cancelled mid-call leaves its call running until redis-py notices; that call
    holds its pooled connection until then. Whoever bounds connections by counting callers
    waits for these (:func:`when_ended`) before letting the next caller in, or the pool opens
    another connection meanwhile."""
    calls: set[asyncio.Future[Any]] = set()
    token = _tracked.set(calls)
    try:
        yield calls
    finally:
        _tracked.reset(token)


def when_ended(calls: set[asyncio.Future[Any]], then: Callable[[], None]) -> None:
    """Call ``then()`` once every one of ``calls`` has ended (at once when all have)."""
    pending = {call for call in calls if not call.done()}
    if not pending:
        then()
        return

    def ended(call: asyncio.Future[Any]) -> None:
        pending.discard(call)
        if not pending:
            then()

    for call in list(pending):
        call.add_done_callback(ended)


class _AsyncFollowingPool(SentinelConnectionPool):
    """Asks the Sentinels who the primary is at most every :data:`PRIMARY_RECHECK_S` when it
    hands out a connection, and drops idle connections to a former primary.

    redis-py alone asks only when it opens a connection, and an old primary demoted by
    ``SENTINEL FAILOVER`` keeps answering (and acknowledging writes that are lost) for about
    ten seconds, until the Sentinels turn it into a replica.
    """

    def __init__(self, service_name: str, sentinel_manager: Any, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._next_check = 0.0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + PRIMARY_RECHECK_S
            # Closes the idle connections when the primary moved.
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self.get_master_address()  # type: ignore[no-untyped-call]
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


class _AsyncSentinelRedis(AsyncRedis):
    """A client of the current primary that also closes the Sentinel clients behind it."""

    sentinels: AsyncSentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            if self.sentinels is not None:
                await self.sentinels.aclose()
                self.sentinels = None
