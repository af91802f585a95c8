"""Helpers shared by the test folders (``from tests.helpers import eventually``)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: Long enough for a loaded CI machine; a passing test returns as soon as its condition holds.
EVENTUALLY_TIMEOUT_S = 15.0


async def eventually(
    check: Callable[[], Awaitable[T] | T],
    what: str = "the condition",
    *,
    timeout_s: float = EVENTUALLY_TIMEOUT_S,
    interval_s: float = 0.02,
) -> T:
    """Re-check ``check()`` (plain or async) until it returns something truthy, and return that.

    For state that has no event to await (server counters, records published periodically);
    fails with an ``AssertionError`` naming ``what`` after ``timeout_s``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(interval_s)
