"""A checkpoint that arrives partway through the demo, as an operator adds one to a machine.

The demo submits a few jobs for a checkpoint no machine has: they wait, ``status()`` says why
(``needs checkpoint ...``) and the dashboard marks them unrunnable. Later the demo does what an
operator does: it puts the file on one machine (each of the machine's fake ComfyUI instances
lists it from then on, ``POST /fake/config``) and runs ``fleetq refresh-capabilities HOST``
(the same control command), so the machine publishes its new capabilities and claims the jobs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from fleetq.client import Client
from fleetq.errors import FleetqError, JobNotFound

log = logging.getLogger(__name__)


def add_checkpoints(base_url: str, checkpoints: Sequence[str], timeout_s: float = 5.0) -> None:
    """Make the fake ComfyUI at ``base_url`` list ``checkpoints`` in ``models/checkpoints``:
    the demo's stand-in for copying model files onto a machine."""
    body = json.dumps({"checkpoints": list(checkpoints)}).encode()
    request = urllib.request.Request(
        f"{base_url}/fake/config", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:
        answer.read()


@dataclass
class ModelArrival:
    """Jobs waiting for ``model``, and its arrival on ``host`` (whose fake ComfyUI instances
    answer at ``backend_urls`` and then hold ``checkpoints``, the new model among them)."""

    model: str
    host: str
    backend_urls: tuple[str, ...]
    checkpoints: tuple[str, ...]
    #: The jobs that need the model, submitted before it arrives.
    job_ids: list[str] = field(default_factory=list)
    #: Job id -> what ``status()`` said of it just before the model arrived (None: nothing,
    #: which would mean some live machine could run it).
    reasons_before: dict[str, str | None] = field(default_factory=dict)
    #: When the model went onto the machine (epoch ms); None until then.
    at_ms: int | None = None
    #: Why adding the model or asking for the refresh failed, if it did.
    error: str | None = None
    delivered: threading.Event = field(default_factory=threading.Event)

    def deliver(self, client: Client) -> None:
        """Record why the jobs wait, put the model on the machine, ask for the refresh."""
        try:
            for job_id in self.job_ids:
                try:
                    reason = client.status(job_id, eta=False).unschedulable
                except JobNotFound:
                    reason = None
                self.reasons_before[job_id] = reason
            self.at_ms = int(time.time() * 1000)
            for url in self.backend_urls:
                add_checkpoints(url, self.checkpoints)
            client.send_control(self.host, {"type": "refresh-capabilities"}, by="fleetq demo")
            log.warning("demo: added %s to %s and asked it to read its capabilities again",
                        self.model, self.host)  # fmt: skip
        except (OSError, ValueError, FleetqError, redis.exceptions.RedisError) as e:
            # At quit the backends or Redis may be gone already; the summary reports it.
            self.error = str(e) or type(e).__name__
            log.warning("demo: adding %s to %s failed: %s", self.model, self.host, self.error)
        finally:
            self.delivered.set()
