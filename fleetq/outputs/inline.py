"""The ``redis`` output store: the bytes go into Redis with the records (today's behaviour)."""

from __future__ import annotations

from collections.abc import Sequence

from fleetq.model import Output
from fleetq.outputs.base import OutputWriter, StoredOutputs, record
from fleetq.outputs.location import REDIS_LOCATION


class RedisOutputs(OutputWriter):
    """Keeps the bytes in the job's output hash (capped by ``FLEETQ_MAX_OUTPUT_BYTES``,
    expired after ``FLEETQ_OUTPUT_TTL_S`` by Redis itself)."""

    kind = "redis"

    async def store(self, job_id: str, claim: int, outputs: Sequence[Output]) -> StoredOutputs:
        files = tuple(record(o, REDIS_LOCATION) for o in outputs)
        return StoredOutputs(files, tuple(o.data for o in outputs))
