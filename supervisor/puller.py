"""One puller per GPU: claim a job only while the GPU is healthy, its backend is alive and idle,
and nobody drained the GPU or paused the service; then run it to its end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from fleetq.errors import RedisUnavailable
from fleetq.model import ClaimedJob
from fleetq.records import BlockedBy, PullerStatus
from fleetq.requirements import derive
from fleetq.worker import ClaimOutcome, WorkerQueue
from supervisor.backends.base import Backend
from supervisor.config import SupervisorConfig
from supervisor.execution import JobExecution, RunOutcome
from supervisor.gpu.monitor import GpuMonitor
from supervisor.profile import GpuProfile
from supervisor.state import PullerState
from supervisor.waiting import wait_event

log = logging.getLogger(__name__)

#: After a backend fails a run, its puller waits before claiming for it again: 1 s, doubling
#: up to a minute, reset by the next success. A backend whose probe passes but whose answers are
#: garbage would otherwise have the same job requeued and claimed again many times a second.
BACKEND_COOLDOWN_MIN_S = 1.0
BACKEND_COOLDOWN_MAX_S = 60.0
#: While a live backend's capabilities cannot be read, how often the gate tries again.
CAPABILITIES_RETRY_S = 30.0


class Puller:
    """Claims and runs jobs for one GPU until ``stopping`` is set."""

    def __init__(
        self,
        gpu: int,
        backends: Mapping[str, Backend],
        queue: WorkerQueue,
        monitor: GpuMonitor,
        config: SupervisorConfig,
        stopping: asyncio.Event,
        profile: GpuProfile | None = None,
    ) -> None:
        self.gpu = gpu
        self.backends = dict(backends)
        self.queue = queue
        self.monitor = monitor
        self.config = config
        self.stopping = stopping
        self.state = PullerState(gpu)
        self.current: JobExecution | None = None
        #: What the last gate check found: the services open to claims, and whether none was.
        self._open: list[str] = []
        self._gate_closed = False
        self.where = f"{config.host_id}:{gpu}"
        #: What this GPU's backends can run and have loaded; picks the classes it claims.
        self.profile = profile or GpuProfile(self.where, self.backends, config.labels)
        #: service -> monotonic time before which unknown capabilities are not read again.
        self._read_after: dict[str, float] = {}
        #: service -> (monotonic time until which it is not claimed for, current delay, why)
        self._cooldown: dict[str, tuple[float, float, str]] = {}
        #: service -> monotonic time its backend completed one of our jobs
        self._just_finished: dict[str, float] = {}

    async def run(self) -> None:
        log.info("puller %s started for %s", self.where, ", ".join(self.backends))
        failures = 0
        while not self.stopping.is_set():
            try:
                self._gate_closed = False
                outcome = await self.queue.claim(
                    list(self.backends), self.config.host_id, self.gpu, self.config.claim_block_s,
                    may_claim=self._gate, on_empty=self._note_empty, stop=self.stopping,
                    scopes=self.profile.scopes,
                )  # fmt: skip
                failures = 0
                if outcome.job is not None:
                    await self._execute(outcome.job)
                elif outcome.drained:
                    self.state.set_blocked(BlockedBy.DRAINED, "drained by operator")
                    await self._rest(self.config.gate_retry_s)
                elif self._gate_closed:
                    await self._rest(self.config.gate_retry_s)
            except RedisUnavailable as e:
                failures += 1
                self.state.set_blocked(BlockedBy.REDIS_UNAVAILABLE, "Redis unavailable")
                log.warning("puller %s: %s", self.where, e)
                await self._rest(min(10.0, 0.25 * 2**failures))
            except Exception:
                failures += 1
                log.exception("puller %s: unexpected error; continuing", self.where)
                await self._rest(min(10.0, 0.25 * 2**failures))
        self.state.status = PullerStatus.STOPPED
        log.info("puller %s stopped after %d job(s)", self.where, self.state.jobs_done)

    def _note_empty(self, outcome: ClaimOutcome) -> None:
        """Nothing to claim: say whether this GPU waits for work or for a paused service."""
        services = set(self._open)
        if services and services <= set(outcome.paused):
            paused = "service paused: " + ", ".join(sorted(services))
            self.state.set_blocked(BlockedBy.SERVICE_PAUSED, paused)
        else:
            self.state.set_idle()

    async def _rest(self, seconds: float) -> None:
        """Wait before the next gate check, waking at once if the supervisor stops."""
        await wait_event(self.stopping, seconds)

    async def _gate(self) -> list[str]:
        """The services this GPU may claim for now; empty (with a reason published) if none.
        Runs before every claim, including after each wake-up."""
        self._open = await self._open_services()
        self._gate_closed = not self._open
        return self._open

    async def _open_services(self) -> list[str]:
        verdict = await self.monitor.check(self.gpu, self.config.min_free_mb)
        if not verdict.can_claim:
            reasons = "GPU unhealthy: " + "; ".join(verdict.reasons)
            self.state.set_blocked(BlockedBy.GPU_UNHEALTHY, reasons)
            return []
        # Drains and pauses are checked by the claim itself, atomically.
        candidates = list(self.backends)
        now = asyncio.get_running_loop().time()
        cooling = {s: c for s, c in self._cooldown.items() if s in candidates and c[0] > now}
        candidates = [s for s in candidates if s not in cooling]
        if not candidates:
            until, _, why = min(cooling.values())
            why = f"backend failing: {why} (retry in {until - now:.0f} s)"
            self.state.set_blocked(BlockedBy.BACKEND_FAILING, why)
            return []
        # Right after our own job completed, the backend is known alive and idle: skip one probe.
        fresh = [s for s in candidates if self._just_finished.pop(s, 0.0) > now - 2.0]
        to_probe = [s for s in candidates if s not in fresh]
        probes = await asyncio.gather(*(self.backends[s].probe() for s in to_probe))
        ready = fresh + [s for s, p in zip(to_probe, probes, strict=True) if p.ready]
        await self._learn_capabilities(ready, now)
        if not ready and probes:
            probe = probes[0]
            by, state = (
                (BlockedBy.BACKEND_DOWN, "backend down")
                if not probe.alive
                else (BlockedBy.BACKEND_BUSY, "backend busy")
            )
            self.state.set_blocked(by, f"{state}: {probe.detail}" if probe.detail else state)
        return ready

    async def _learn_capabilities(self, ready: list[str], now: float) -> None:
        """Read the capabilities of backends never read yet, before they claim (at most every
        ``CAPABILITIES_RETRY_S`` while the read fails: they then claim every class)."""
        unknown = [
            s for s in ready if not self.profile.known(s) and self._read_after.get(s, 0) <= now
        ]
        if not unknown:
            return
        for service in unknown:
            self._read_after[service] = now + CAPABILITIES_RETRY_S
        if await self.profile.refresh(unknown):
            self.queue.wakeups.rescope()

    async def _execute(self, job: ClaimedJob) -> None:
        faults = self.monitor.xid_queue(self.gpu)
        while not faults.empty():  # XIDs from before this job were judged by the gate
            faults.get_nowait()
        execution = JobExecution(
            job, self.backends[job.service], self.queue, self.state, self.where,
            self.config.interrupt_grace_s, faults,
        )  # fmt: skip
        self.current = execution
        self.state.set_running(job)
        self.monitor.set_busy(self.gpu, True)
        try:
            outcome = await execution.run()
        finally:
            self.monitor.set_busy(self.gpu, False)
            self.current = None
            self.state.set_finished()
        self._note_backend(job.service, execution.backend_error)
        if outcome is RunOutcome.COMPLETED:  # its model is the one loaded now
            self.profile.note_job(job.service, derive(job.service, job.workflow))
            self._just_finished[job.service] = asyncio.get_running_loop().time()

    def _note_backend(self, service: str, error: str | None) -> None:
        if error is None:
            self._cooldown.pop(service, None)
            return
        self.profile.forget_warm(service)  # a restarted backend holds no model
        previous = self._cooldown.get(service)
        delay = BACKEND_COOLDOWN_MIN_S if previous is None else previous[1] * 2
        delay = min(BACKEND_COOLDOWN_MAX_S, delay)
        self._cooldown[service] = (asyncio.get_running_loop().time() + delay, delay, error[:120])
        log.warning("puller %s: %s backend failed (%s); not claiming for it for %.0f s",
                    self.where, service, error, delay)  # fmt: skip
