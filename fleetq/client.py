"""The client helper: submit jobs, follow them, and steer the queue (synchronous API).

Example::

    from fleetq import Client

    client = Client.from_env()                       # FLEETQ_REDIS_URL, FLEETQ_NAMESPACE
    job = client.submit(workflow, service="comfyui", priority=10)
    print(job.id, job.status().position)
    result = job.wait(timeout_s=600, on_progress=lambda s: print(f"{s.progress:.0%}"))
    result.save("out/")                              # writes the images

The asyncio twin is :class:`fleetq.AsyncClient`; both call the same protocol. The code is
generated (``fleetq/_sync/client.py``) from the asyncio source, ``fleetq/_async/client.py``.
"""

from __future__ import annotations

from fleetq._sync.client import Client, Job, _Outage
from fleetq._sync_support import ProgressCallback

__all__ = ["Client", "Job", "ProgressCallback", "_Outage"]
