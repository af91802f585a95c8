"""Reproductions of issues the chaos work found, kept as regression tests once fixed.

A submit whose reply was lost used to create a second, orphaned job (fixed in 5165f2c: a resent
submit is answered as the first). See docs/RELIABILITY.md, "Findings"."""

from __future__ import annotations

import pytest
from fault_proxy import FaultProxy

from fleetq import Client, Settings
from fleetq.demo.embedded import RedisServer, redis_server_binary

needs_redis = pytest.mark.skipif(redis_server_binary() is None, reason="no redis-server")


@needs_redis
def test_a_lost_submit_reply_does_not_create_a_second_job() -> None:
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {}}}
    with RedisServer() as server, FaultProxy(server.port) as proxy:
        settings = Settings(redis_url=proxy.url, namespace="dup")
        with Client(settings) as client:
            client.submit(workflow)  # loads the script (a first EVALSHA would be NOSCRIPT)
            proxy.drop_next(b"EVALSHA")
            job = client.submit(workflow, priority=5)
            assert proxy.dropped == 1
            queued = [s.id for s in client.jobs("queued", "comfyui")]
            assert len(queued) == 2, f"{job.id} submitted once, queued now: {queued}"
