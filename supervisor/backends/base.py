"""The contract between a puller and the backend instance bound to its GPU.

A puller asks its backend to :meth:`~Backend.probe` before every claim, to :meth:`~Backend.run`
a claimed job, and to :meth:`~Backend.interrupt` it on cancel, timeout or shutdown. How a run
ended decides who is blamed:

- it returns a :class:`BackendResult`: the job completed;
- :class:`JobRejected`: the backend refused the job itself (validation): failed, not retried;
- :class:`JobRuntimeError`: the job failed while running: an attempt is charged, retried later;
- :class:`JobInterrupted`: it stopped because :meth:`~Backend.interrupt` was called;
- :class:`BackendUnavailable`: the backend is down, restarted, or answered nonsense: the job is
  requeued without charging an attempt, and the puller stops claiming until a probe passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetq.errors import FleetqError
from fleetq.model import JobError, Output

#: The input files of a job by name (:mod:`fleetq.inputs`), as its workflow names them.
InputFiles = Mapping[str, bytes]

#: Receives progress (0..1) and a short text, e.g. ``(0.4, "KSampler 8/20")``. Cheap and
#: synchronous: the puller keeps the latest value and renews its lease with it.
ProgressSink = Callable[[float, str], None]
#: Receives the newest live preview of the running job: image bytes and their content type.
#: Cheap and synchronous: the execution keeps only the latest and stores it at a bounded rate.
PreviewSink = Callable[[bytes, str], None]


@dataclass(frozen=True)
class BackendProbe:
    """The answer to "may this GPU claim a job now?" from the backend's side."""

    alive: bool
    idle: bool
    #: Why it is not ready, for the dashboard ("connection refused", "3 prompts queued").
    detail: str = ""
    #: Anything useful to publish (version, VRAM, loaded model), JSON-serialisable.
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.alive and self.idle


@dataclass(frozen=True)
class BackendResult:
    outputs: tuple[Output, ...]
    #: What the backend said besides the files, JSON-serialisable: e.g. ComfyUI's
    #: ``prompt_id`` and the ``node_errors`` of outputs it dropped, A1111's ``info``.
    details: Mapping[str, Any] = field(default_factory=dict)


class BackendError(FleetqError):
    """Base of the ways a run can end other than success."""


class JobRejected(BackendError):
    """The backend refused the job as invalid; retrying cannot help."""

    def __init__(self, error: JobError) -> None:
        super().__init__(error.describe())
        self.error = error


class JobRuntimeError(BackendError):
    """The job failed while executing (node error, out of memory...)."""

    def __init__(self, error: JobError) -> None:
        super().__init__(error.describe())
        self.error = error


class JobInterrupted(BackendError):
    """The run stopped because it was interrupted (cancel, timeout, shutdown)."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached, restarted mid-job, or answered something malformed."""


class Backend(Protocol):
    """One backend instance (one ComfyUI or A1111 process) bound to one GPU."""

    service: str
    url: str

    async def probe(self) -> BackendProbe:
        """Is the instance up and idle? Never raises; a failure is ``alive=False``."""
        ...

    async def run(
        self,
        job_id: str,
        workflow: Mapping[str, Any],
        progress: ProgressSink,
        inputs: InputFiles | None = None,
        *,
        preview: PreviewSink | None = None,
    ) -> BackendResult:
        """Run one job to its end; raises a :class:`BackendError` subclass unless it completed.

        ``job_id`` is fleetq's id (put in file name prefixes, logs). ``inputs`` are the files
        the job carries; the adapter delivers them to its backend before the job starts (a
        delivery that fails for the backend's sake is :class:`BackendUnavailable`, a file the
        backend refuses :class:`JobRejected`). ``preview``, when given, receives the sampler's
        live previews as the backend shows them (None: the caller wants none, so the adapter
        should not ask for them). Cancellation of the calling task must propagate (and should
        try to interrupt the backend).
        """
        ...

    async def clear(self) -> None:
        """Drop work this adapter did not start (left by a supervisor that died): pending
        prompts and the running one. Called once when the supervisor starts; never raises."""
        ...

    async def interrupt(self) -> None:
        """Stop the job this adapter is running, if any; :meth:`run` then raises
        :class:`JobInterrupted`. Safe to call when idle. Never raises."""
        ...

    async def aclose(self) -> None: ...
