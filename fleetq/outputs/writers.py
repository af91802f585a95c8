"""The writer a supervisor uses for the configured output store."""

from __future__ import annotations

from fleetq.config import Settings
from fleetq.outputs.base import OutputWriter
from fleetq.outputs.files import FileOutputs
from fleetq.outputs.inline import RedisOutputs
from fleetq.outputs.location import parse_store_url


def open_writer(settings: Settings) -> OutputWriter:
    """The writer for ``settings.output_store``; raises ``InvalidArgument`` for a bad URL or a
    missing ``s3`` extra. Call :meth:`OutputWriter.check` before taking jobs."""
    url = parse_store_url(settings.output_store)
    if url.kind == "file":
        return FileOutputs(url.folder, settings.namespace, settings.output_ttl_s)
    if url.kind == "s3":
        from fleetq.outputs.s3 import S3Outputs

        return S3Outputs(url, settings)
    return RedisOutputs()
