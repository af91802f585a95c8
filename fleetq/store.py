"""Runs protocol calls on Redis: :class:`SyncStore` for threads, :class:`AsyncStore` for asyncio.

The stores also hold the few plain commands that are not state changes: reading outputs, the
blocking waits on wake-up markers and job streams, and the fleet records of supervisors.
Both are written once, in :mod:`fleetq._async.store`; :mod:`fleetq._sync.store` is generated
from it by ``scripts/unasync.py``.
"""

from __future__ import annotations

from fleetq._async.store import AsyncStore, StreamEntry, _decode_entries, new_job_id
from fleetq._async_support import cancel_safe, tracking_calls, when_ended
from fleetq._sync.store import SyncStore
from fleetq.errors import FleetqError

__all__ = [
    "AsyncStore",
    "FleetqError",
    "StreamEntry",
    "SyncStore",
    "_decode_entries",
    "cancel_safe",
    "new_job_id",
    "tracking_calls",
    "when_ended",
]
