"""The one poller: a Textual worker that reads the fleet about once a second and posts
immutable snapshots. Widgets never talk to Redis; they get :class:`Poller.Updated` messages.

When a read fails (Redis down), it posts :class:`Poller.Failed` and retries with exponential
backoff; the Redis client reconnects by itself on the next read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from textual import work
from textual.message import Message
from textual.widget import Widget

from fleetq import FleetqError
from tui.snapshot import Snapshot, SnapshotBuilder
from tui.source import JobFilter, ReadRequest, SnapshotSource

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0


class Poller(Widget):
    """A widget without a face: owns the refresh worker and posts what it read."""

    DEFAULT_CSS = "Poller { display: none; }"

    class Updated(Message):
        """A fresh snapshot of the fleet."""

        def __init__(self, snapshot: Snapshot) -> None:
            super().__init__()
            self.snapshot = snapshot

    class Failed(Message):
        """A refresh failed; the poller retries in ``retry_in_s``."""

        def __init__(self, error: str, retry_in_s: float, failures: int) -> None:
            super().__init__()
            self.error = error
            self.retry_in_s = retry_in_s
            self.failures = failures

    def __init__(
        self,
        source: SnapshotSource,
        *,
        refresh_s: float = 1.0,
        clock: Callable[[], float] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.source = source
        self.refresh_s = refresh_s
        self.clock = clock
        self.builder = SnapshotBuilder()
        self.job_filter = JobFilter()
        self.detail_id: str | None = None
        self.last: Snapshot | None = None
        #: Reads started so far, and the number of the read behind ``last`` (so a caller can
        #: wait for data read after some moment, not one already in flight).
        self.reads_started = 0
        self.last_read = 0
        self._read_number = 0
        self._wake = asyncio.Event()

    def on_mount(self) -> None:
        self.poll()

    def refresh_now(self) -> None:
        """Read again now (after an action, or a filter change) instead of at the next tick."""
        self._wake.set()

    def request(self) -> ReadRequest:
        return ReadRequest(job_filter=self.job_filter, detail_id=self.detail_id)

    async def read_once(self) -> Snapshot:
        """One refresh: read through the source and build the snapshot (the benchmarked step)."""
        request = self.request()
        self.reads_started += 1
        number = self.reads_started
        read = await self.source.read(request)
        self._read_number = number
        now_ms = None if self.clock is None else int(self.clock() * 1000)
        return self.builder.build(read, request.job_filter, now_ms)

    @work(exclusive=True, group="poller", exit_on_error=False, description="read the fleet")
    async def poll(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            started = time.monotonic()
            try:
                snapshot = await self.read_once()
            except (FleetqError, OSError) as e:
                failures += 1
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (failures - 1))
                log.warning("dashboard refresh failed (%d in a row): %s", failures, e)
                self.post_message(self.Failed(str(e), delay, failures))
                await self._sleep(delay)
                continue
            except Exception as e:  # a bad record must not stop the dashboard
                failures += 1
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (failures - 1))
                log.exception("dashboard refresh failed")
                self.post_message(self.Failed(f"{type(e).__name__}: {e}", delay, failures))
                await self._sleep(delay)
                continue
            failures = 0
            self.last = snapshot
            self.last_read = self._read_number
            self.post_message(self.Updated(snapshot))
            await self._sleep(max(0.05, self.refresh_s - (time.monotonic() - started)))

    async def _sleep(self, seconds: float) -> None:
        # Waits for the next tick, or for refresh_now(), whichever comes first.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
