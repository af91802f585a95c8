"""The dashboard's cost to the hub: a fixed handful of Redis connections per dashboard,
whatever the size of the fleet or the queue."""

from __future__ import annotations

import redis.asyncio as aioredis

from fleetq import AsyncClient, Settings
from fleetq.demo.embedded import RedisServer
from tests.tui.dash_helpers import comfy_graph, first_snapshot, fresh, gpu_record
from tui.app import create_app

#: The poller reads stats, a page of jobs and the fleet at once, over one pooled client.
MAX_CONNECTIONS = 4


async def _dashboard_connections(raw: aioredis.Redis) -> int:
    """Connections without a name: the dashboard's (the test names its own)."""
    return sum(1 for c in await raw.client_list() if not c.get("name"))


async def test_a_dashboard_holds_a_few_connections_whatever_the_fleet_size() -> None:
    with RedisServer() as server:
        named = Settings(redis_url=server.url + "?client_name=test", namespace="dash")
        raw = aioredis.Redis.from_url(named.redis_url)
        try:
            async with AsyncClient(named) as client:
                counts = []
                for hosts in (1, 40):
                    for h in range(hosts):
                        gpus = [gpu_record(i) for i in range(8)]
                        await client.store.publish_host(f"gpu-host-{h}", {"version": "t"}, gpus)
                    for seed in range(200):
                        await client.submit(comfy_graph(seed))
                    app = create_app(named.with_overrides(redis_url=server.url), refresh_s=0.2)
                    async with app.run_test(size=(160, 48)) as pilot:
                        await first_snapshot(pilot)
                        for _ in range(3):
                            await fresh(pilot)
                            counts.append(await _dashboard_connections(raw))
            assert max(counts) <= MAX_CONNECTIONS, counts
        finally:
            await raw.aclose()
