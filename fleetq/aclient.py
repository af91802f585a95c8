"""The client helper for asyncio: the same API as :mod:`fleetq.client`, awaitable.

Example::

    from fleetq import AsyncClient

    async with AsyncClient.from_env() as client:
        job = await client.submit(workflow, service="comfyui")
        result = await job.wait(timeout_s=600)
        result.save("out/")

The code lives in ``fleetq/_async/client.py``, the source the synchronous client is generated
from.
"""

from __future__ import annotations

from fleetq._async.client import AsyncClient, AsyncJob, _AsyncOutage
from fleetq._async_support import AsyncProgressCallback

__all__ = ["AsyncClient", "AsyncJob", "AsyncProgressCallback", "_AsyncOutage"]
