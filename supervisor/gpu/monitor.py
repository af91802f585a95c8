"""``GpuMonitor``: the asyncio face of the GPU layer.

It owns a backend (real NVML or ``FakeNvml``) and never blocks the event loop:

- one single-thread executor (``nvml-poll``) runs every sampling call, so NVML reads are
  serialised and a 1 s publisher and N pre-claim checks never pile up threads;
- one dedicated thread (``nvml-events``) loops on ``backend.wait_event(event_poll_ms)`` and hands
  each XID to the loop with ``call_soon_threadsafe``; the short timeout lets it stop promptly;
- per-GPU ``GpuHealthTracker``s, touched only on the loop, turn readings plus XIDs into verdicts.

Typical use::

    async with GpuMonitor(open_gpu_backend(args.simulate_gpus)) as monitor:
        gpus = await monitor.discover()
        verdict = await monitor.check(0, min_free_mb=8192)  # puller, before each claim
        statuses = await monitor.sample_and_judge()          # publisher, every second
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from supervisor.gpu.backend import GpuBackend, SimulatedBackend, open_gpu_backend
from supervisor.gpu.errors import GpuError, UnknownGpuError
from supervisor.gpu.faults import ClearFaults, Fault
from supervisor.gpu.health import GpuHealthTracker, HealthThresholds, HealthVerdict
from supervisor.gpu.readings import GpuIdentity, GpuReading, JsonDict, XidEvent

__all__ = ["GpuMonitor", "GpuStatus", "open_gpu_backend"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
XID_QUEUE_SIZE = 64  # per GPU; the oldest event is dropped when nobody reads the queue
EVENT_RETRY_S = 1.0  # pause after a failed event wait, so a lost GPU cannot spin the thread


@dataclass(frozen=True)
class GpuStatus:
    """A reading and the verdict drawn from it: what the publisher sends every second."""

    reading: GpuReading
    verdict: HealthVerdict

    def to_json_dict(self) -> JsonDict:
        """``{"reading": {...}, "health": {"status": ..., "reasons": [...]}}``."""
        return {"reading": self.reading.to_json_dict(), "health": self.verdict.to_json_dict()}


class GpuMonitor:
    """Discovery, sampling, XID collection and health checks for every GPU of one machine.

    Create it on the event loop that will use it; ``close()`` (or leaving ``async with``) stops
    the event thread, closes the backend and shuts the executor down.
    """

    def __init__(
        self,
        backend: GpuBackend,
        thresholds: HealthThresholds | None = None,
        *,
        event_poll_ms: int = 1000,
    ) -> None:
        self._backend = backend
        self._thresholds = thresholds or HealthThresholds()
        self._event_poll_ms = event_poll_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nvml-poll")
        self._identities: list[GpuIdentity] | None = None
        self._trackers: dict[int, GpuHealthTracker] = {}
        self._xid_queues: dict[int, asyncio.Queue[XidEvent]] = {}
        self._xid_support: dict[int, bool] = {}
        self._event_error: str | None = None
        self._event_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._start_lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def backend(self) -> GpuBackend:
        """The backend this monitor owns."""
        return self._backend

    @property
    def simulated(self) -> bool:
        """True when the GPUs are simulated (``--simulate-gpus``)."""
        return self._backend.simulated

    async def __aenter__(self) -> GpuMonitor:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- start-up -----------------------------------------------------------------------------

    async def start(self) -> list[GpuIdentity]:
        """Discover the GPUs and start watching XID events; idempotent. Returns the GPUs."""
        async with self._start_lock:
            if self._closed:
                raise GpuError("the GPU monitor is closed")
            if self._identities is not None:
                return list(self._identities)
            self._loop = asyncio.get_running_loop()
            identities = await self._run(self._backend.discover)
            for gpu in identities:
                self._trackers[gpu.index] = GpuHealthTracker(self._thresholds)
                self._xid_queues[gpu.index] = asyncio.Queue(maxsize=XID_QUEUE_SIZE)
            self._xid_support = await self._run(self._backend.open_events)
            if any(self._xid_support.values()):
                self._event_thread = threading.Thread(
                    target=self._watch_events, name="nvml-events", daemon=True
                )
                self._event_thread.start()
            else:
                log.warning("no GPU supports XID events; critical XIDs will go unnoticed")
            self._identities = identities
            log.info(
                "GPU monitor started: %d GPU(s)%s",
                len(identities),
                " (simulated)" if self.simulated else "",
            )
            return list(identities)

    async def discover(self) -> list[GpuIdentity]:
        """The GPUs of this machine (starts the monitor on first use)."""
        return await self.start()

    def xid_event_support(self) -> dict[int, bool]:
        """Per GPU index, whether the driver delivers XID events for it."""
        return dict(self._xid_support)

    # --- sampling and health ------------------------------------------------------------------

    async def sample(self) -> list[GpuReading]:
        """Read every GPU, in one job on the NVML thread."""
        indices = await self._indices()
        return await self._run(lambda: [self._backend.read(i) for i in indices])

    async def read(self, index: int) -> GpuReading:
        """Read one GPU."""
        await self._indices()
        self._tracker(index)
        return await self._run(lambda: self._backend.read(index))

    async def check(self, index: int, min_free_mb: int | None = None) -> HealthVerdict:
        """Pre-claim check of one GPU: a fresh reading judged with every XID seen so far.

        ``min_free_mb`` is the memory the next job needs (MiB); ``None`` skips that rule.
        """
        reading = await self.read(index)
        return self._judge(reading, min_free_mb)

    async def sample_and_judge(self, min_free_mb: int | None = None) -> list[GpuStatus]:
        """Read and judge every GPU: the publisher's once-a-second call."""
        readings = await self.sample()
        return [GpuStatus(r, self._judge(r, min_free_mb)) for r in readings]

    def last_verdict(self, index: int) -> HealthVerdict | None:
        """The latest verdict for GPU ``index`` without touching NVML."""
        return self._tracker(index).last_verdict

    def _judge(self, reading: GpuReading, min_free_mb: int | None) -> HealthVerdict:
        return self._tracker(reading.index).update(
            reading, min_free_mb=min_free_mb, xid_watch_error=self._event_error
        )

    def clear_faults(self, index: int) -> None:
        """Operator action: forget sticky findings (critical XIDs, new ECC errors) of a GPU."""
        self._tracker(index).clear()
        log.info("GPU %d: sticky health findings cleared by operator", index)

    # --- XIDs ---------------------------------------------------------------------------------

    def xid_queue(self, index: int) -> asyncio.Queue[XidEvent]:
        """XIDs of GPU ``index`` as they arrive (for a puller that wants to react at once).

        Health checks do not need this queue; they see every XID regardless.
        """
        self._tracker(index)
        return self._xid_queues[index]

    def recent_xids(self, index: int) -> tuple[XidEvent, ...]:
        """The latest XIDs of GPU ``index``, oldest first."""
        return self._tracker(index).recent_xids

    def _watch_events(self) -> None:
        """Event thread: wait with a short timeout so ``close()`` can stop it."""
        loop = self._loop
        assert loop is not None
        while not self._stop.is_set():
            try:
                event = self._backend.wait_event(self._event_poll_ms)
            except Exception as e:  # the thread must survive a failed wait, e.g. GPU lost
                if self._stop.is_set():
                    break
                if not self._post(loop, self._events_failed, str(e)):
                    break
                self._stop.wait(EVENT_RETRY_S)
                continue
            if event is not None and not self._post(loop, self._deliver, event):
                break

    @staticmethod
    def _post(loop: asyncio.AbstractEventLoop, callback: Callable[[_T], None], arg: _T) -> bool:
        try:
            loop.call_soon_threadsafe(callback, arg)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            return False
        return True

    def _deliver(self, event: XidEvent) -> None:
        """On the loop: route an XID to its GPU (or to all, if NVML could not say which)."""
        self._event_error = None
        log.warning("GPU %d: %s", event.gpu_index, event.description)
        targets = [event.gpu_index] if event.gpu_index in self._trackers else list(self._trackers)
        for index in targets:
            self._trackers[index].record_xid(event)
            q = self._xid_queues[index]
            if q.full():
                q.get_nowait()
            q.put_nowait(event)

    def _events_failed(self, error: str) -> None:
        if self._event_error != error:
            log.error("XID event watch failed: %s", error)
        self._event_error = error

    # --- simulation ---------------------------------------------------------------------------

    def set_busy(self, index: int, busy: bool) -> None:
        """Tell a simulated GPU whether a job runs on it; a no-op on real GPUs."""
        if isinstance(self._backend, SimulatedBackend):
            self._backend.set_busy(index, busy)

    async def inject(self, index: int, fault: Fault) -> None:
        """Inject a fault into a simulated GPU; ``ClearFaults`` also clears sticky health.

        Raises ``GpuError`` on real GPUs, ``FaultNotApplicableError`` when the card cannot have it.
        """
        backend = self._backend
        if not isinstance(backend, SimulatedBackend):
            raise GpuError("faults can only be injected into simulated GPUs (--simulate-gpus N)")
        self._tracker(index)
        await self._run(lambda: backend.inject(index, fault))
        if isinstance(fault, ClearFaults):
            self.clear_faults(index)

    # --- lifetime -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the event thread, close the backend, shut the NVML thread down. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        thread, self._event_thread = self._event_thread, None
        loop = asyncio.get_running_loop()
        try:
            if thread is not None:
                # Bounded by event_poll_ms; run in the poll thread, not the shared default pool.
                await loop.run_in_executor(self._executor, thread.join)
            await loop.run_in_executor(self._executor, self._backend.close)
        finally:
            self._executor.shutdown(wait=True)

    # --- helpers ------------------------------------------------------------------------------

    async def _run(self, fn: Callable[[], _T]) -> _T:
        if self._closed:
            raise GpuError("the GPU monitor is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _indices(self) -> list[int]:
        if self._identities is None:
            await self.start()
        return list(self._trackers)

    def _tracker(self, index: int) -> GpuHealthTracker:
        tracker = self._trackers.get(index)
        if tracker is None:
            raise UnknownGpuError(f"no GPU with index {index} (discovered: {list(self._trackers)})")
        return tracker
