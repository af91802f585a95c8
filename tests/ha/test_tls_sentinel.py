"""``rediss+sentinel://``: Sentinels, primary and replica all on TLS, through a failover."""

from __future__ import annotations

import uuid

import pytest
from ha_testkit import HaCluster

from fleetq import Client, Settings
from fleetq.model import Output
from fleetq.worker import WorkerQueue

pytestmark = pytest.mark.slow
BODY = {"prompt": "a lighthouse", "steps": 4}


async def test_tls_sentinel_url_through_a_failover(ha_tls: HaCluster) -> None:
    url = ha_tls.url("rediss+sentinel", ssl_ca_certs=str(ha_tls.ca))
    assert url.startswith("rediss+sentinel://:tls-pw@")
    settings = Settings(redis_url=url, namespace="tls-" + uuid.uuid4().hex[:8],
                        socket_timeout_s=5.0, block_timeout_s=0.5)  # fmt: skip
    worker = WorkerQueue(settings)
    try:
        with Client(settings) as client:
            before = client.submit(BODY, service="a1111")
            ha_tls.failover()
            after = client.submit(BODY, service="a1111")
            for expected in (before, after):
                job = (await worker.claim(["a1111"], "tls", 0, 5.0)).job
                assert job is not None and job.id == expected.id
                await worker.complete(job, [Output("a.png", "image/png", b"x")])
                assert expected.wait(timeout_s=5).outputs
    finally:
        await worker.aclose()
