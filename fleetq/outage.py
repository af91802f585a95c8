"""How long a waiting client rides out a Redis outage (a restart, a Sentinel failover), and how
it backs off meanwhile. The sync and async clients share this policy; each only sleeps its way."""

from __future__ import annotations

import time

from fleetq.backoff import BackoffPolicy
from fleetq.errors import RedisUnavailable


class OutageTolerance:
    """Backoff 0.1 s doubling to 2 s; gives up after 30 s of unbroken unavailability."""

    TOLERANCE_S = 30.0
    BACKOFF = BackoffPolicy(first_s=0.1, max_s=2.0)

    def __init__(self) -> None:
        self.since: float | None = None
        self._backoff = self.BACKOFF.start()

    def backoff(
        self, error: RedisUnavailable, deadline: float | None = None, what: str = "the wait"
    ) -> float:
        """Seconds to wait before trying again; re-raises ``error`` once the outage is too long.

        ``deadline`` (a ``time.monotonic()`` value) is the caller's own limit: past it, the
        caller's ``TimeoutError`` comes first, and no backoff sleeps beyond it.
        """
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise TimeoutError(f"{what} timed out while Redis was unavailable: {error}") from error
        self.since = self.since or now
        if now - self.since > self.TOLERANCE_S:
            raise error
        delay = self._backoff.next_s()
        if deadline is not None:
            delay = min(delay, deadline - now)
        return delay

    def recovered(self) -> None:
        self.since = None
        self._backoff.reset()
