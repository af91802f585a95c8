"""The job model: states, what a caller submits, and what fleetq reports back.

Timestamps are integers of milliseconds since the epoch (Redis server time), named ``*_ms``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetq.previews import Preview

from fleetq.errors import OutputsInRedis
from fleetq.eta import Eta


class JobState(str, Enum):
    """Where a job is in its life. ``queued`` includes jobs waiting out a retry backoff."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)

    def __str__(self) -> str:
        return self.value


class FaultKind(str, Enum):
    """Who is to blame for a failed attempt; decides whether an attempt is charged."""

    #: The job itself failed (runtime error, timeout): charge an attempt, retry after backoff.
    JOB = "job"
    #: The job can never succeed (the backend rejected it): charge and fail at once.
    FINAL = "final"
    #: The GPU, backend or supervisor failed: requeue without charging an attempt.
    INFRA = "infra"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, raw: Any) -> FaultKind | None:
        """The kind named by ``raw``; None for a missing or unknown word (a newer writer)."""
        try:
            return cls(raw)
        except ValueError:
            return None


@dataclass(frozen=True)
class InputFile:
    """One input file a job carries (an image or mask its workflow reads), checked at the edge:
    ``name`` is a plain file name, ``content_type`` sniffed from ``data``."""

    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class JobSpec:
    """A validated job, ready to submit. Build it with :func:`fleetq.validation.build_spec`."""

    service: str
    workflow_json: str
    priority: int
    max_attempts: int
    timeout_ms: int
    metadata_json: str
    idempotency_key: str | None
    #: The requirement class (``Requirements.class_id``; empty when the job needs nothing of a
    #: machine) and its canonical requirements (``Requirements.canonical``).
    class_id: str = ""
    requirements_json: str = ""
    #: Input files stored with the job (:mod:`fleetq.inputs`).
    inputs: tuple[InputFile, ...] = ()
    #: Who the job is for: fair share is between tenants (docs/SCHEDULING.md).
    tenant: str = "default"


@dataclass(frozen=True, slots=True)
class JobError:
    """Why an attempt or a job failed."""

    type: str
    message: str
    node: str | None = None
    #: Who was to blame, when the writer said (the same kind the failed attempt was charged as).
    kind: FaultKind | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f" (node {self.node})" if self.node else ""
        return f"{self.type}: {self.message}{where}"

    def to_json(self) -> str:
        data: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.node is not None:
            data["node"] = self.node
        if self.kind is not None:
            data["kind"] = self.kind.value
        if self.details:
            data["details"] = dict(self.details)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | None) -> JobError | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return cls(type="Error", message=raw)
        if not isinstance(data, dict):
            return cls(type="Error", message=str(data))
        node = data.get("node")
        details = data.get("details")
        return cls(
            type=str(data.get("type", "Error")),
            message=str(data.get("message", "")),
            node=None if node is None else str(node),
            kind=FaultKind.parse(data.get("kind")),
            details=details if isinstance(details, dict) else {},
        )


@dataclass(frozen=True)
class OutputFile:
    """One output file of a finished job, as listed in its manifest (without the bytes).

    ``location`` says where the bytes are: ``redis`` (or empty, for records older than it),
    ``file:///...`` or ``s3://bucket/key`` (see :mod:`fleetq.outputs`).
    """

    filename: str
    content_type: str
    size: int
    sha256: str = ""
    location: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One claim of a job by a GPU, from its timeline."""

    claim: int
    host: str
    gpu: int | None
    started_ms: int
    ended_ms: int | None
    outcome: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A snapshot of one job, as ``job.status()`` and ``client.get()`` return it."""

    id: str
    service: str
    state: JobState
    priority: int
    #: 0 means next in its service queue; None when not waiting in the queue.
    position: int | None
    progress: float
    progress_text: str
    attempts: int
    max_attempts: int
    claims: int
    lost_leases: int
    host: str | None
    gpu: int | None
    error: JobError | None
    submitted_ms: int
    enqueued_ms: int | None
    started_ms: int | None
    finished_ms: int | None
    #: For a job waiting out a retry backoff: when it may run again.
    ready_ms: int | None
    timeout_ms: int
    cancel_requested: bool
    metadata: Mapping[str, Any]
    outputs: tuple[OutputFile, ...]
    timeline: tuple[Attempt, ...]
    #: Requeues for faults of GPUs or backends (not charged as attempts).
    infra_faults: int = 0
    #: The job's requirement class ('' when it needs nothing of a machine).
    class_id: str = ""
    #: What it needs of a machine, in canonical form (``Requirements.to_dict``; set by
    #: ``status()``, empty in listings).
    requirements: Mapping[str, Any] = field(default_factory=dict)
    #: Set by ``status()`` for a queued job that no live GPU can run: why, against the live
    #: GPU closest to it ("needs checkpoint flux1-dev.safetensors"). It stays queued and is
    #: claimed as soon as a capable GPU appears.
    unschedulable: str | None = None
    tenant: str = "default"
    #: A queued job's estimated start and finish (``fleetq.eta``): None when not queued, when
    #: no live GPU can run it, or when the caller skipped it.
    eta: Eta | None = None
    #: The latest live preview of a running job, given to ``wait(on_progress=...)``
    #: callbacks (None elsewhere; read one with ``client.preview(job_id)``).
    #: Not part of a job's JSON form (``metadata``): a snapshot of the job, not of its image.
    preview: Preview | None = field(
        default=None, compare=False, repr=False, metadata={"json": False}
    )

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal


@dataclass(frozen=True)
class Output:
    """One output file with its bytes."""

    filename: str
    content_type: str
    data: bytes

    def __iter__(self) -> Any:
        # Lets callers unpack ``filename, content_type, data = output``.
        return iter((self.filename, self.content_type, self.data))


@dataclass(frozen=True)
class JobResult:
    """What a completed job produced."""

    job_id: str
    outputs: tuple[Output, ...]
    #: The record of each output (same order as ``outputs``).
    files: tuple[OutputFile, ...] = ()
    #: Where each output can be fetched from outside fleetq: see :meth:`urls`.
    links: tuple[str, ...] = ()

    def urls(self) -> list[str]:
        """A URL per output: a presigned HTTPS URL for the S3 store (valid for
        ``FLEETQ_OUTPUT_URL_TTL_S`` from when the result was read), a ``file://`` URL for the
        file store. Outputs kept in Redis have none: serve them through the gateway or
        :meth:`save` them; this raises :class:`~fleetq.errors.OutputsInRedis` then."""
        if len(self.links) != len(self.outputs) or not all(self.links):
            raise OutputsInRedis(
                f"the outputs of job {self.job_id} are kept in Redis and have no URL; "
                "use result.outputs, result.save() or the gateway (FLEETQ_OUTPUT_STORE)"
            )
        return list(self.links)

    def save(self, folder: str | Path) -> list[Path]:
        """Write every output into ``folder`` (created if needed); returns the paths written.

        File names come from the backend and are reduced to a safe base name, so a name such
        as ``../../etc/passwd`` is written as ``passwd`` inside ``folder``, never outside it.
        Existing files are never overwritten (a name taken gets a numeric suffix), and a link
        planted in the folder is never followed.
        """
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for index, output in enumerate(self.outputs):
            name = safe_filename(output.filename, fallback=f"{self.job_id}_{index}")
            written.append(_write_new_file(target, name, output.data))
        return written


def _write_new_file(folder: Path, name: str, data: bytes) -> Path:
    """Create ``name`` (or ``name_1``, ``name_2``...) in ``folder``: O_EXCL | O_NOFOLLOW, so
    neither an existing file nor a symbolic link (even a dangling one) is ever written through."""
    stem, dot, ext = name.rpartition(".")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for n in range(10_000):
        candidate = name if n == 0 else (f"{stem}_{n}.{ext}" if dot else f"{name}_{n}")
        path = folder / candidate
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path
    raise FileExistsError(f"no free file name for {name!r} in {folder}")


@dataclass(frozen=True)
class ClaimedJob:
    """A job leased to one GPU; the token must accompany every write about it."""

    id: str
    service: str
    token: str
    workflow: dict[str, Any]
    priority: int
    attempts: int
    max_attempts: int
    claims: int
    timeout_ms: int
    metadata: Mapping[str, Any]
    submitted_ms: int
    #: The job's requirement class ('' when it needs nothing of a machine).
    class_id: str = ""


@dataclass(frozen=True)
class TenantStats:
    """One tenant's jobs in one service: queued (delayed retries included) and running."""

    tenant: str
    queued: int
    running: int
    #: Its fair-share weight (1 unless an operator set one).
    weight: float = 1.0


@dataclass(frozen=True)
class ServiceStats:
    """Counts for one service queue; every number is O(1) to read."""

    service: str
    queued: int
    delayed: int
    running: int
    completed: int
    failed: int
    cancelled: int
    completed_last_minute: int
    failed_last_minute: int
    oldest_enqueued_ms: int | None
    paused: bool
    #: Tenants with queued or running jobs, by tenant name.
    tenants: tuple[TenantStats, ...] = ()

    def oldest_wait_ms(self, now_ms: int) -> int | None:
        return None if self.oldest_enqueued_ms is None else max(0, now_ms - self.oldest_enqueued_ms)


@dataclass(frozen=True)
class Stats:
    """Fleet-wide counts, as ``client.stats()`` returns them."""

    now_ms: int
    services: tuple[ServiceStats, ...]
    drained: tuple[str, ...]

    def total(self, state: str) -> int:
        return sum(int(getattr(s, state)) for s in self.services)

    def service(self, name: str) -> ServiceStats | None:
        return next((s for s in self.services if s.service == name), None)


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")


def safe_filename(name: str, fallback: str) -> str:
    """Reduce a backend-supplied file name to a base name that stays inside a folder."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = _UNSAFE.sub("_", base).strip(" .")
    return base[:200] or fallback
