"""Live previews: the latest image a running job's backend shows while it samples.

ComfyUI sends preview frames over its WebSocket, A1111 returns ``current_image`` from its
progress endpoint. The supervisor keeps the newest one per running job in Redis
(``preview:<id>``, see :mod:`fleetq.keys`): at most ``preview_max_bytes``, written at most every
``preview_interval_ms``, expiring after ``preview_ttl_ms`` and deleted as soon as the job stops
running. It is never part of the job's outputs. Each write adds a ``preview`` event to the
job's own stream, so waiters learn of it without polling.

This module holds what clients share: the :class:`Preview` record, how it is read from its
hash, and :class:`PreviewFollower`, which tells a waiting loop when to fetch a new one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetq.model import JobStatus

#: Image types a preview may have, by the magic bytes that start the file.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}


def sniff_image_type(data: bytes) -> str | None:
    """The content type of an image from its first bytes (PNG, JPEG, WEBP, GIF), else None."""
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class Preview:
    """The latest live preview of a running job."""

    job_id: str
    data: bytes
    content_type: str
    #: When the supervisor stored it (Redis clock, ms since the epoch).
    at_ms: int

    @property
    def extension(self) -> str:
        """A file extension for the image type (``.png``, ``.jpg``, ``.webp``...)."""
        return _EXTENSIONS.get(self.content_type, ".bin")

    def save(self, path: str | Path) -> Path:
        """Write the image to ``path`` (replacing the file); returns the path."""
        target = Path(path)
        target.write_bytes(self.data)
        return target


def preview_from_hash(job_id: str, values: Mapping[Any, Any] | None) -> Preview | None:
    """The :class:`Preview` stored in a ``preview:<id>`` hash (HGETALL reply), or None when
    there is none (never was, expired, or the job stopped running) or it is incomplete."""
    if not values:
        return None
    fields = {_text(k): v for k, v in values.items()}
    data = fields.get("data")
    if not isinstance(data, bytes) or not data:
        return None
    content_type = _text(fields.get("content_type")) or "application/octet-stream"
    try:
        at_ms = int(_text(fields.get("ms")) or 0)
    except ValueError:
        at_ms = 0
    return Preview(job_id, data, content_type, at_ms)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


class PreviewFollower:
    """Decides, in a loop that waits on a job's stream, when to read the preview again, and
    hands the latest one on with the status (``status.preview``).

    The first read happens once the job runs (a preview may already be there); after that,
    only when a ``preview`` event arrived on the job's stream (:meth:`feed`). With ``include``
    false nothing is ever read.
    """

    def __init__(self, include: bool = True) -> None:
        self.include = include
        self.due = include
        self.latest: Preview | None = None

    def feed(self, entries: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Look at the entries just read from the job's stream."""
        if self.include and any(_text(fields.get("type")) == "preview" for _, fields in entries):
            self.due = True

    def wants_read(self, status: JobStatus) -> bool:
        """Whether to read the preview now. A job that is not running has none (a preview
        belongs to one run), so none is read and the last one is forgotten."""
        if status.state.value != "running":
            self.latest = None
            self.due = self.include
            return False
        return self.due

    def fetched(self, preview: Preview | None) -> None:
        self.due = False
        self.latest = preview

    def marker(self) -> int | None:
        """Changes whenever a new preview was read (part of the "anything new?" check)."""
        return None if self.latest is None else self.latest.at_ms

    def attach(self, status: JobStatus) -> JobStatus:
        """``status`` with the latest preview as its ``preview``."""
        return status if self.latest is None else replace(status, preview=self.latest)
