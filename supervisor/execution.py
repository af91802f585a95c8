"""One claimed job on one GPU: run it on the backend, keep its lease, honour cancel and timeout,
and record how it ended, with the blame where it belongs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TypeVar

from fleetq.errors import (
    InputsMissing,
    OutputStoreError,
    OutputTooLarge,
    RedisUnavailable,
    StaleLease,
)
from fleetq.model import ClaimedJob, FaultKind, JobError
from fleetq.outputs.base import StoredOutputs
from fleetq.worker import WorkerQueue
from supervisor.backends.base import (
    Backend,
    BackendResult,
    BackendUnavailable,
    JobInterrupted,
    JobRejected,
    JobRuntimeError,
)
from supervisor.gpu.codes import CRITICAL_XIDS
from supervisor.gpu.readings import XidEvent
from supervisor.persist import until_written
from supervisor.state import PullerState
from supervisor.waiting import wait_event

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Renew at most this often because of progress (a lease renewal also happens every lease/3).
PROGRESS_RENEW_MIN_S = 0.5


class StopReason(str, Enum):
    """Why a run was interrupted before the backend finished it."""

    CANCEL = "cancel"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    #: A critical XID on the GPU while the job ran.
    GPU_FAULT = "gpu_fault"
    #: The lease was taken back (the reaper requeued the job): someone else owns it now.
    LEASE_LOST = "lease_lost"

    def __str__(self) -> str:
        return self.value


class RunOutcome(str, Enum):
    """How a run ended, as recorded in Redis (``lost``: nothing recorded, the lease was gone).
    ``failed``, ``retrying``, ``requeued`` and ``cancelled`` are the answers of the fail
    transition (``fleetq/lua/fail.lua``)."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    RETRYING = "retrying"
    REQUEUED = "requeued"
    LOST = "lost"

    def __str__(self) -> str:
        return self.value


class JobExecution:
    """Runs one job; :meth:`request_stop` interrupts it (cancel, timeout, shutdown)."""

    def __init__(
        self,
        job: ClaimedJob,
        backend: Backend,
        queue: WorkerQueue,
        state: PullerState,
        where: str,
        interrupt_grace_s: float,
        gpu_faults: asyncio.Queue[XidEvent] | None = None,
    ) -> None:
        self.job = job
        self.backend = backend
        self.queue = queue
        self.state = state
        self.where = where
        self.interrupt_grace_s = interrupt_grace_s
        self.gpu_faults = gpu_faults
        self.gpu_fault: str | None = None
        self.stop_reason: StopReason | None = None
        #: Why the backend failed this run (it was unreachable or answered nonsense), if it did.
        self.backend_error: str | None = None
        self._stop = asyncio.Event()
        self._progress_changed = asyncio.Event()
        self._progress: tuple[float | None, str] = (None, "")
        self._preview: tuple[bytes, str] | None = None
        self._preview_changed = asyncio.Event()
        self._previews_skipped = 0

    def request_stop(self, reason: StopReason) -> None:
        """Interrupt the run (the first reason given is the one acted on)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stop.set()

    def _on_progress(self, progress: float, text: str) -> None:
        self._progress = (progress, text)
        self.state.set_progress(progress, text)
        self._progress_changed.set()

    def _on_preview(self, data: bytes, content_type: str) -> None:
        """Keep only the newest preview; :meth:`_store_previews` writes it when due. A frame
        over ``preview_max_bytes`` is skipped here, before it costs a write."""
        limit = self.queue.settings.preview_max_bytes
        if len(data) > limit:
            self._previews_skipped += 1
            if self._previews_skipped == 1:
                log.info("job %s: skipping live previews over %d bytes (this one: %d)",
                         self.job.id, limit, len(data))  # fmt: skip
            return
        self._preview = (data, content_type)
        self._preview_changed.set()

    async def _store_previews(self) -> None:
        """Store the newest preview, at most once per ``preview_interval_ms``: a sampler may
        send a frame per step, Redis gets a bounded rate whatever the backend does."""
        interval_s = self.queue.settings.preview_interval_ms / 1000
        while True:
            await self._preview_changed.wait()
            self._preview_changed.clear()
            if self._preview is None:
                continue
            data, content_type = self._preview
            self._preview = None
            try:
                await self.queue.set_preview(self.job, data, content_type)
            except StaleLease:
                return  # the heartbeat notices the lost lease and stops the run
            except RedisUnavailable:
                pass  # a preview is a nicety: the next one replaces it
            if interval_s > 0:
                await asyncio.sleep(interval_s)  # the rate limit, not a poll

    async def run(self) -> RunOutcome:
        """Run the job to its end and record the outcome; returns it (for logs and tests)."""
        job = self.job
        started = time.monotonic()
        log.info("job %s claimed on %s (service %s, claim %d)", job.id, self.where, job.service,
                 job.claims)  # fmt: skip
        loop = asyncio.get_running_loop()
        timer = loop.call_later(job.timeout_ms / 1000, self.request_stop, StopReason.TIMEOUT)
        previews = self.queue.settings.preview_max_bytes > 0
        run_task = asyncio.create_task(self._run_backend(previews), name=f"run-{job.id}")
        helpers = [
            asyncio.create_task(self._heartbeat(), name=f"heartbeat-{job.id}"),
            asyncio.create_task(self._watch_cancel(), name=f"cancel-watch-{job.id}"),
        ]
        if previews:
            helpers.append(asyncio.create_task(self._store_previews(), name=f"previews-{job.id}"))
        if self.gpu_faults is not None:
            helpers.append(asyncio.create_task(self._watch_gpu(self.gpu_faults)))
        try:
            stop_wait = asyncio.create_task(self._stop.wait())
            await asyncio.wait({run_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            if not run_task.done():
                await self._interrupt(run_task)
            stored = await self._store_outputs(run_task)
        finally:
            timer.cancel()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if not run_task.done():
                run_task.cancel()
                await asyncio.gather(run_task, return_exceptions=True)
        # The final write must not be cut in half by a cancellation of the puller.
        outcome = await asyncio.shield(self._finish(run_task, stored))
        log.info("job %s %s on %s after %.1f s", job.id, outcome, self.where,
                 time.monotonic() - started)  # fmt: skip
        return outcome

    async def _run_backend(self, previews: bool) -> BackendResult:
        """Read the job's input files, then run it on the backend, which delivers them."""
        job = self.job
        try:
            inputs = await self.queue.inputs(job)
        except RedisUnavailable as e:
            raise _InputsUnreadable(f"could not read the job's input files: {e}") from e
        return await self.backend.run(
            job.id,
            job.workflow,
            self._on_progress,
            inputs or None,
            preview=self._on_preview if previews else None,
        )

    async def _interrupt(self, run_task: asyncio.Task[BackendResult]) -> None:
        log.info("job %s: interrupting backend (%s)", self.job.id, self.stop_reason)
        await self.backend.interrupt()
        done, _ = await asyncio.wait({run_task}, timeout=self.interrupt_grace_s)
        if not done:
            log.warning("job %s: backend did not stop within %.0f s; abandoning the run",
                        self.job.id, self.interrupt_grace_s)  # fmt: skip
            run_task.cancel()
            await asyncio.gather(run_task, return_exceptions=True)

    async def _heartbeat(self) -> None:
        """Renew the lease at once (it confirms the lease and catches a cancel that came before
        the watch started, while the backend already starts), then every lease/3 and soon
        after progress changes."""
        loop = asyncio.get_running_loop()
        interval_s = self.queue.settings.lease_ms / 3000
        last_sent = 0.0
        first = True
        while True:
            if not first:
                await wait_event(self._progress_changed, interval_s)
            first = False
            since = loop.time() - last_sent
            if since < PROGRESS_RENEW_MIN_S:
                await asyncio.sleep(PROGRESS_RENEW_MIN_S - since)  # throttle progress writes
            self._progress_changed.clear()
            progress, text = self._progress
            try:
                cancel = await self.queue.renew(self.job, progress, text)
            except StaleLease as e:
                log.warning("job %s: %s; stopping the run", self.job.id, e)
                self.request_stop(StopReason.LEASE_LOST)
                return
            except RedisUnavailable:
                continue  # keep running; the reaper waits out Redis outages
            last_sent = loop.time()
            if cancel:
                self.request_stop(StopReason.CANCEL)

    async def _watch_gpu(self, faults: asyncio.Queue[XidEvent]) -> None:
        """A critical XID while the job runs: its results cannot be trusted; stop it and give
        it back to the queue (the GPU's fault, not the job's)."""
        while True:
            event = await faults.get()
            if event.xid in CRITICAL_XIDS:
                self.gpu_fault = event.description
                self.request_stop(StopReason.GPU_FAULT)
                return

    async def _watch_cancel(self) -> None:
        """A cancel request arrives on the job's own stream within milliseconds."""
        await self.queue.wait_for_cancel(self.job)
        self.request_stop(StopReason.CANCEL)

    async def _store_outputs(
        self, run_task: asyncio.Task[BackendResult]
    ) -> StoredOutputs | OutputStoreError | None:
        """Put a successful run's outputs into the output store while the heartbeat still
        renews the lease (a large upload to a slow store may outlast a lease). None when the
        run did not succeed or the lease is gone."""
        if run_task.cancelled() or run_task.exception() is not None:
            return None
        if self.stop_reason is StopReason.LEASE_LOST:
            return None
        try:
            return await self.queue.store_outputs(self.job, run_task.result().outputs)
        except OutputStoreError as e:
            return e

    async def _finish(
        self,
        run_task: asyncio.Task[BackendResult],
        stored: StoredOutputs | OutputStoreError | None,
    ) -> RunOutcome:
        job, reason = self.job, self.stop_reason
        if reason is StopReason.LEASE_LOST:
            return RunOutcome.LOST
        error: BaseException | None
        if run_task.cancelled():
            error = JobInterrupted("the backend did not stop after an interrupt")
        else:
            error = run_task.exception()
        if error is None:
            if isinstance(stored, OutputStoreError):
                # The store's fault, not the job's: another attempt (maybe elsewhere) is free.
                log.warning("job %s: output store failed: %s", job.id, stored)
                fault = JobError("OutputStoreUnavailable", str(stored), kind=FaultKind.INFRA)
                return await self._fail(FaultKind.INFRA, fault)
            assert stored is not None  # a successful run's outputs were stored
            done = stored
            try:
                await self._write(lambda: self.queue.complete(job, done))
            except OutputTooLarge as e:
                return await self._fail(FaultKind.FINAL, JobError("OutputTooLarge", str(e)))
            except StaleLease:
                return RunOutcome.LOST
            return RunOutcome.COMPLETED
        if reason is StopReason.CANCEL:
            try:
                await self._write(lambda: self.queue.ack_cancel(job))
            except StaleLease:
                return RunOutcome.LOST
            return RunOutcome.CANCELLED
        if reason is StopReason.TIMEOUT:
            message = f"job exceeded its timeout of {job.timeout_ms / 1000:g} s"
            return await self._fail(FaultKind.JOB, JobError("Timeout", message, kind=FaultKind.JOB))
        if reason is StopReason.GPU_FAULT:
            message = f"{self.gpu_fault} on {self.where} while the job ran"
            return await self._fail(
                FaultKind.INFRA, JobError("GpuFault", message, kind=FaultKind.INFRA)
            )
        if reason is StopReason.SHUTDOWN:
            message = f"supervisor on {self.where} stopped before the job finished"
            return await self._fail(
                FaultKind.INFRA, JobError("Shutdown", message, kind=FaultKind.INFRA)
            )
        return await self._fail(*self._blame(error))

    def _blame(self, error: BaseException) -> tuple[FaultKind, JobError]:
        if isinstance(error, JobRejected):
            return FaultKind.FINAL, _with_kind(error.error, FaultKind.FINAL)
        if isinstance(error, JobRuntimeError):
            return FaultKind.JOB, _with_kind(error.error, FaultKind.JOB)
        if isinstance(error, JobInterrupted):
            message = f"the backend on {self.where} was interrupted by someone else"
            return FaultKind.INFRA, JobError("Interrupted", message, kind=FaultKind.INFRA)
        if isinstance(error, _InputsUnreadable):
            return FaultKind.INFRA, JobError("RedisUnavailable", str(error), kind=FaultKind.INFRA)
        if isinstance(error, InputsMissing):
            return FaultKind.FINAL, JobError("InputsMissing", str(error), kind=FaultKind.FINAL)
        if isinstance(error, BackendUnavailable):
            self.backend_error = str(error)
            return FaultKind.INFRA, JobError("BackendUnavailable", str(error), kind=FaultKind.INFRA)
        # An adapter bug triggered by this job: charge it, so it cannot loop forever.
        log.error("job %s: unexpected %s from the backend adapter", self.job.id,
                  type(error).__name__, exc_info=error)  # fmt: skip
        return FaultKind.JOB, JobError(type(error).__name__, str(error) or "adapter error")

    async def _fail(self, kind: FaultKind, error: JobError) -> RunOutcome:
        try:
            return RunOutcome(await self._write(lambda: self.queue.fail(self.job, kind, error)))
        except StaleLease:
            return RunOutcome.LOST

    async def _write(self, write: Callable[[], Awaitable[T]]) -> T:
        return await until_written(write, f"job {self.job.id} result")


class _InputsUnreadable(Exception):
    """Redis failed while the job's inputs were read: nobody's fault but the hub's."""


def _with_kind(error: JobError, kind: FaultKind) -> JobError:
    return JobError(error.type, error.message, error.node, kind, error.details)
