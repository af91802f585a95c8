"""Writes that must reach Redis: retried with backoff while Redis is unreachable.

A finished job's result is held in memory and written once Redis is back, so an outage of a
minute costs no work. A stale lease ends the attempt: the job was recovered elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fleetq.backoff import BackoffPolicy
from fleetq.errors import RedisUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Between tries of a write while Redis is unreachable.
WRITE_RETRY = BackoffPolicy(first_s=0.1, max_s=5.0)


async def until_written(
    write: Callable[[], Awaitable[T]],
    what: str,
    *,
    backoff: BackoffPolicy = WRITE_RETRY,
    give_up_after_s: float | None = None,
) -> T:
    """Run ``write`` until it succeeds; retry RedisUnavailable with exponential backoff.

    Other errors (StaleLease included) propagate at once. With ``give_up_after_s`` the last
    RedisUnavailable is raised once that much time has passed.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    retries = backoff.start()
    warned = False
    while True:
        try:
            result = await write()
        except RedisUnavailable as e:
            if give_up_after_s is not None and loop.time() - started > give_up_after_s:
                raise
            if not warned:
                log.warning("%s: %s; holding it and retrying", what, e)
                warned = True
            await asyncio.sleep(retries.next_s())  # between reconnect attempts, not event waiting
            continue
        if warned:
            log.info("%s: written after Redis came back (%.1f s)", what, loop.time() - started)
        return result
