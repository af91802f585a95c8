"""What every output writer does: store one job's outputs and say where they went."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from fleetq.model import Output, OutputFile, safe_filename


@dataclass(frozen=True)
class StoredOutputs:
    """A job's outputs once stored: the records for Redis, and the bytes that go into Redis
    with them (all of them for the ``redis`` store, none for the others)."""

    files: tuple[OutputFile, ...]
    inline: tuple[bytes, ...] = ()


class OutputWriter(ABC):
    """Stores outputs for a supervisor. Writes are idempotent and crash-safe: each output goes
    to a key scoped by job, claim and index, and appears whole or not at all, so a supervisor
    killed mid-upload leaves at most an orphan that the next claim never reads (the completing
    claim's records are the ones Redis keeps)."""

    #: ``redis``, ``file`` or ``s3``.
    kind: str
    #: How often a supervisor calls :meth:`sweep`; None: the store expires outputs itself.
    sweep_interval_s: float | None = None

    async def check(self) -> None:  # noqa: B027 (a hook: most stores have nothing to check)
        """Raise :class:`~fleetq.errors.OutputStoreError` if the store cannot take writes;
        a supervisor calls it at start, so a bad store stops it there and not mid-job."""

    @abstractmethod
    async def store(self, job_id: str, claim: int, outputs: Sequence[Output]) -> StoredOutputs:
        """Store every output of one claim of a job; raises ``OutputStoreError``."""

    async def sweep(self, now_s: float) -> int:
        """Remove outputs past their time to live; returns how many groups were removed
        (stores that expire on their own answer 0)."""
        return 0

    async def close(self) -> None:  # noqa: B027 (a hook)
        """Release connections."""


def record(output: Output, location: str) -> OutputFile:
    """The record Redis keeps for ``output`` stored at ``location``."""
    digest = hashlib.sha256(output.data).hexdigest()
    return OutputFile(output.filename, output.content_type, len(output.data), digest, location)


def object_name(job_id: str, claim: int, index: int, filename: str) -> str:
    """``<job>/claim-<n>/<index>-<name>``: scoped by job and claim, so two claims of one job
    never write the same key, and a retried upload of one claim rewrites its own."""
    name = safe_filename(filename, fallback="output")
    return f"{job_id}/claim-{claim}/{index}-{name}"
