"""The ``file://`` output store: a folder shared by every supervisor and client (NFS on-prem).

Layout: ``<root>/<namespace>/until-<epoch_s>/<job>/claim-<n>/<index>-<name>``. The
``until-`` folder groups outputs by when they expire (now + ``output_ttl_s``, rounded up to a
slot of ``output_ttl_s / 24``, at most an hour), so removing expired outputs is deleting whole
folders whose time has passed, without reading a single file. Every supervisor sweeps (a sweep
by two at once is harmless: removing what is gone already is a no-op). Each file is written
under a temporary name, flushed, then renamed: a reader sees the whole file or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import secrets
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from fleetq.errors import OutputStoreError
from fleetq.model import Output
from fleetq.outputs.base import OutputWriter, StoredOutputs, object_name, record

log = logging.getLogger(__name__)
SLOT_PREFIX = "until-"
MAX_SLOT_S = 3600


def slot_s(output_ttl_s: int) -> int:
    """The width of one expiry folder: 1/24 of the time to live, 1 s to 1 h."""
    return max(1, min(MAX_SLOT_S, output_ttl_s // 24))


class FileOutputs(OutputWriter):
    """Writes outputs into a shared folder and removes them once expired."""

    kind = "file"

    def __init__(self, root: Path, namespace: str, output_ttl_s: int) -> None:
        self.base = root / namespace
        self.output_ttl_s = output_ttl_s
        self.slot_s = slot_s(output_ttl_s)
        self.sweep_interval_s = float(min(60, self.slot_s))

    async def check(self) -> None:
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            probe = self.base / f".probe-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise OutputStoreError(
                f"output store folder {self.base} cannot be written: {e.strerror or e} "
                "(FLEETQ_OUTPUT_STORE)"
            ) from e

    async def store(self, job_id: str, claim: int, outputs: Sequence[Output]) -> StoredOutputs:
        until = math.ceil((time.time() + self.output_ttl_s) / self.slot_s) * self.slot_s
        folder = self.base / f"{SLOT_PREFIX}{until}"
        files = []
        for index, output in enumerate(outputs):
            path = folder / object_name(job_id, claim, index, output.filename)
            await asyncio.to_thread(_write_whole, path, output.data)
            files.append(record(output, path.as_uri()))
        return StoredOutputs(tuple(files))

    async def sweep(self, now_s: float) -> int:
        return await asyncio.to_thread(self._sweep, now_s)

    def _sweep(self, now_s: float) -> int:
        try:
            names = os.listdir(self.base)
        except FileNotFoundError:
            return 0
        removed = 0
        for name in names:
            if not name.startswith(SLOT_PREFIX):
                continue
            until = name[len(SLOT_PREFIX) :]
            if until.isdigit() and int(until) <= now_s:
                shutil.rmtree(self.base / name, ignore_errors=True)
                removed += 1
        if removed:
            log.info("output store: removed %d expired folder(s) under %s", removed, self.base)
        return removed


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` so that no reader ever sees a partial file: a temporary name
    in the same folder, flushed to disk, then an atomic rename over the final name."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            temp.unlink()
        what = "out of space" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise OutputStoreError(f"cannot write output {path}: {what}") from e
