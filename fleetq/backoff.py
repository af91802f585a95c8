"""One backoff policy type for every retry loop: exponential, capped, optionally jittered.

A :class:`BackoffPolicy` is a frozen value (constants of the modules that retry, or derived
from settings); a :class:`Backoff` counts the failures of one retry loop under it::

    RECONNECT = BackoffPolicy(first_s=0.1, max_s=5.0)

    backoff = RECONNECT.start()
    while True:
        try:
            await step()
            backoff.reset()
        except RedisUnavailable:
            await asyncio.sleep(backoff.next_s())
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """Delays from ``first_s``, times ``factor`` per failure, capped at ``max_s``; ``jitter``
    (0..1) shortens each delay by a random part of up to that fraction, so that many waiters
    that failed together do not retry together."""

    first_s: float
    max_s: float
    factor: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.first_s) and math.isfinite(self.max_s)):
            raise ValueError("backoff delays must be finite")
        if not 0 <= self.first_s <= self.max_s:
            raise ValueError(
                f"backoff needs 0 <= first_s <= max_s, not {self.first_s}, {self.max_s}"
            )
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError("backoff needs factor >= 1 and jitter in 0..1")

    def delay_s(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """The wait after the ``failures``-th failure in a row (1: ``first_s``)."""
        try:
            ceiling = min(self.max_s, self.first_s * self.factor ** max(failures - 1, 0))
        except OverflowError:  # a long outage: far past the cap
            ceiling = self.max_s
        return ceiling * (1 - self.jitter * rand()) if self.jitter else ceiling

    def start(self) -> Backoff:
        """A fresh failure count under this policy, for one retry loop."""
        return Backoff(self)


class Backoff:
    """The failures in a row of one retry loop: :meth:`next_s` after a failure, :meth:`reset`
    after a success."""

    def __init__(self, policy: BackoffPolicy) -> None:
        self.policy = policy
        self.failures = 0

    def next_s(self) -> float:
        """Count one more failure; the seconds to wait before the next try."""
        self.failures += 1
        return self.policy.delay_s(self.failures)

    def reset(self) -> None:
        self.failures = 0
