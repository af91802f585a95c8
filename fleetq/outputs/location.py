"""Store URLs (what an operator configures) and output locations (what a record names)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fleetq.errors import InvalidArgument

#: The location of an output kept in Redis (its bytes sit in the job's output hash).
REDIS_LOCATION = "redis"
_HELP = "redis, file:///absolute/folder or s3://bucket/prefix (FLEETQ_OUTPUT_STORE)"


@dataclass(frozen=True)
class StoreUrl:
    """A parsed output store URL: ``kind`` is ``redis``, ``file`` or ``s3``."""

    kind: str
    #: ``file``: the folder; ``s3``: the bucket; ``redis``: empty.
    root: str = ""
    #: ``s3``: the key prefix (no leading or trailing slash), possibly empty.
    prefix: str = ""

    @property
    def folder(self) -> Path:
        return Path(self.root)


def parse_store_url(url: str) -> StoreUrl:
    """Check and split an output store URL; raises :class:`InvalidArgument` with what to fix."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidArgument(f"output store must be {_HELP}, not {url!r:.80}")
    if url == "redis":
        return StoreUrl("redis")
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise InvalidArgument(
            f"output store {url!r:.120} takes no ?query or #fragment; set the S3 endpoint "
            "and region with FLEETQ_S3_ENDPOINT_URL and FLEETQ_S3_REGION"
        )
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise InvalidArgument(
                f"output store {url!r:.120} must name an absolute folder: file:///mnt/shared/fleetq"
            )
        normal = posixpath.normpath(path)
        if normal == "/":
            raise InvalidArgument(f"output store {url!r:.120}: refusing the root folder")
        return StoreUrl("file", normal)
    if parts.scheme == "s3":
        bucket = parts.netloc
        if not _valid_bucket(bucket):
            raise InvalidArgument(
                f"output store {url!r:.120} must name a bucket (3-63 lowercase letters, digits, "
                "dots or hyphens): s3://bucket/prefix"
            )
        prefix = unquote(parts.path).strip("/")
        if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
            raise InvalidArgument(
                f"output store {url!r:.120}: the prefix has an empty or dot segment"
            )
        return StoreUrl("s3", bucket, prefix)
    raise InvalidArgument(f"output store must be {_HELP}, not {url!r:.120}")


def _valid_bucket(name: str) -> bool:
    return (
        3 <= len(name) <= 63
        and all(c.islower() or c.isdigit() or c in ".-" for c in name)
        and name.isascii()
        and name[0].isalnum()
        and name[-1].isalnum()
    )


def location_kind(location: str) -> str:
    """``redis``, ``file`` or ``s3`` for a record's location (records written before the
    location existed carry none: their bytes are in Redis)."""
    if location in ("", REDIS_LOCATION):
        return "redis"
    scheme = location.split(":", 1)[0]
    if scheme in ("file", "s3"):
        return scheme
    raise InvalidArgument(f"unknown output location {location!r:.120}")


def file_path(location: str) -> Path:
    """The local path of a ``file://`` location."""
    return Path(unquote(urlsplit(location).path))


def s3_object(location: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://bucket/key`` location."""
    parts = urlsplit(location)
    return parts.netloc, unquote(parts.path).lstrip("/")
