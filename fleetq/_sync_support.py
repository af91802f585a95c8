"""What only the synchronous side has: the names that the generated :mod:`fleetq._sync` code
imports in place of those of :mod:`fleetq._async_support` (see there)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from redis import Redis
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from fleetq.model import JobStatus
from fleetq.redis_errors import CONNECTION_ERRORS
from fleetq.redis_options import PRIMARY_RECHECK_S

__all__ = [
    "ClusterNode",
    "ProgressCallback",
    "Redis",
    "RedisCluster",
    "Retry",
    "Script",
    "Sentinel",
    "_FollowingPool",
    "_SentinelRedis",
    "blocking",
    "notify",
    "sleep",
]

T = TypeVar("T")

#: Called with a fresh status while a job is waited for.
ProgressCallback = Callable[[JobStatus], None]

sleep = time.sleep


def blocking(call: Callable[[], T]) -> T:
    """Run a call that reads files; the synchronous client simply calls it."""
    return call()


def notify(on_progress: ProgressCallback, status: JobStatus) -> None:
    """Call a progress callback."""
    on_progress(status)


class _FollowingPool(SentinelConnectionPool):
    """The synchronous twin of :class:`fleetq._async_support._AsyncFollowingPool`: asks the
    Sentinels who the primary is at most every :data:`PRIMARY_RECHECK_S`."""

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


class _SentinelRedis(Redis):
    """A client of the current primary that also closes the Sentinel clients behind it."""

    sentinels: Sentinel | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.sentinels is not None:
                self.sentinels.close()
                self.sentinels = None
