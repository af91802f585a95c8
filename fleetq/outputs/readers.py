"""Reading outputs back, whatever store holds them: the client's ``result()``, the gateway."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping

from fleetq.config import Settings
from fleetq.errors import OutputsExpired, OutputStoreError
from fleetq.model import JobResult, JobStatus, Output, OutputFile
from fleetq.outputs.location import file_path, location_kind
from fleetq.outputs.s3 import S3Reader, check_digest

#: The bytes of outputs kept in Redis: the job's output hash (index -> bytes).
Blobs = Mapping[bytes, bytes]


class OutputReader:
    """Fetches each output from where its record says it is. The S3 client is made on the
    first ``s3://`` record, so readers of other stores never import the S3 library."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._s3: S3Reader | None = None
        self._lock = threading.Lock()

    def s3(self) -> S3Reader:
        with self._lock:
            if self._s3 is None:
                self._s3 = S3Reader(self.settings)
            return self._s3

    @staticmethod
    def needs_blobs(status: JobStatus) -> bool:
        """True when some output's bytes are in Redis (read them with one HGETALL)."""
        return any(location_kind(f.location) == "redis" for f in status.outputs)

    def link(self, file: OutputFile) -> str:
        """A URL for one output: presigned for S3, ``file://`` for files, "" for Redis."""
        kind = location_kind(file.location)
        if kind == "s3":
            return self.s3().url(file)
        return file.location if kind == "file" else ""

    def read(self, job_id: str, index: int, file: OutputFile, blobs: Blobs) -> bytes:
        """The bytes of one output (blocking: files and S3 are read here)."""
        kind = location_kind(file.location)
        if kind == "redis":
            data = blobs.get(str(index).encode())
            if data is None:
                raise OutputsExpired(
                    f"the outputs of job {job_id} have expired (kept for FLEETQ_OUTPUT_TTL_S)"
                )
            return data
        if kind == "s3":
            return self.s3().read(job_id, file)
        try:
            data = file_path(file.location).read_bytes()
        except FileNotFoundError as e:
            raise OutputsExpired(
                f"the outputs of job {job_id} have expired (removed from {file.location})"
            ) from e
        except OSError as e:
            raise OutputStoreError(f"cannot read {file.location}: {e.strerror or e}") from e
        check_digest(file, data)
        return data

    def result(self, status: JobStatus, blobs: Blobs) -> JobResult:
        """A completed job's :class:`JobResult`, with every output's bytes read."""
        outputs = tuple(
            Output(f.filename, f.content_type, self.read(status.id, i, f, blobs))
            for i, f in enumerate(status.outputs)
        )
        links = tuple(self.link(f) for f in status.outputs)
        return JobResult(status.id, outputs, status.outputs, links)


class AsyncOutputReader(OutputReader):
    """The same for asyncio: blocking reads run in a thread."""

    async def result(self, status: JobStatus, blobs: Blobs) -> JobResult:  # type: ignore[override]
        return await asyncio.to_thread(OutputReader.result, self, status, blobs)


SyncOutputReader = OutputReader
