"""Waiting on an event with a timeout, without losing a cancellation.

``asyncio.wait_for(event.wait(), t)`` on Python 3.10 and 3.11 can swallow a cancellation that
arrives just as the event is set (bpo-42130), which leaves a task that was told to stop running
forever. ``asyncio.wait`` has no such race.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set or ``timeout_s`` passes; True if it is set."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout_s)
        return bool(done)
    finally:
        waiter.cancel()
