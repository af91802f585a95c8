"""fleetq on Redis Cluster (``redis+cluster://``): a local cluster of three primaries with a
replica each. Namespaces land on different shards; the client, the worker side, a real
supervisor and the dashboard's read API work on every shard and through a primary's failover."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
from cluster_testkit import LocalCluster, namespace_slot

from fleetq import AsyncClient, Client, Settings
from fleetq.demo.processes import consecutive_free_ports
from fleetq.errors import InvalidArgument, RedisUnavailable
from fleetq.model import JobState, Output
from fleetq.urls import parse_cluster_url, safe_url
from fleetq.worker import WorkerQueue
from supervisor.app import Supervisor
from supervisor.config import BackendSpec, SupervisorConfig
from supervisor.sim.comfyui import serve_comfyui
from supervisor.sim.comfyui.workflows import fake_work_workflow
from tui.source import JobFilter, ReadRequest, RedisSource

pytestmark = pytest.mark.slow
GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}}


def namespaces_on_every_shard(cluster: LocalCluster) -> dict[int, str]:
    """One namespace per primary (port -> namespace)."""
    primaries = cluster.primaries_ports()
    found: dict[int, str] = {}
    while len(found) < len(primaries):
        name = "c-" + uuid.uuid4().hex[:8]
        port = cluster.owner(namespace_slot(name)).port
        found.setdefault(port, name)
    return found


async def test_client_and_worker_work_on_every_shard(redis_cluster: LocalCluster) -> None:
    spread = namespaces_on_every_shard(redis_cluster)
    url = redis_cluster.url()  # one startup node: the others are found through it
    for namespace in spread.values():
        settings = Settings(redis_url=url, namespace=namespace, socket_timeout_s=5.0,
                            block_timeout_s=1.0)  # fmt: skip
        with Client(settings) as client:
            low, high = client.submit(GRAPH), client.submit(GRAPH, idempotency_key="k")
            assert client.bump(high.id, 10) == 0
            assert low.status().position == 1
            assert [j.id for j in client.jobs("queued")] == [high.id, low.id]
            assert client.pause("comfyui") and client.resume("comfyui")
            assert client.drain("h:9") and client.undrain("h:9")
            worker = WorkerQueue(settings)
            try:
                claimed = (await worker.claim(["comfyui"], "h", 0, timeout_s=1)).job
                assert claimed is not None and claimed.id == high.id
                assert await worker.renew(claimed, 0.5) is False
                await worker.complete(claimed, [Output("a.png", "image/png", b"png")])
                assert high.wait(timeout_s=5).outputs[0].data == b"png"
                assert low.cancel() == "cancelled" and client.retry(low.id) == 0
                stats = client.stats().service("comfyui")
                assert stats is not None and (stats.queued, stats.completed) == (1, 1)
                assert (await worker.reap("c")).ran
            finally:
                await worker.aclose()


def test_a_plain_url_to_a_node_that_does_not_own_the_namespace_says_so(
    redis_cluster: LocalCluster,
) -> None:
    namespace = next(
        name for name in (f"m-{i}" for i in range(1000))
        if redis_cluster.owner(namespace_slot(name)).port != redis_cluster.nodes[0].port
    )  # fmt: skip
    plain = f"redis://127.0.0.1:{redis_cluster.nodes[0].port}/0"
    with Client(Settings(redis_url=plain, namespace=namespace)) as client:
        with pytest.raises(RedisUnavailable, match=r"redis\+cluster://"):
            client.submit(GRAPH)
        with pytest.raises(RedisUnavailable, match="does not serve namespace"):
            client.stats()


def test_cluster_urls_parse_and_mask_their_password() -> None:
    parsed = parse_cluster_url("rediss+cluster://u:p%40ss@a:7000,b?ssl_ca_certs=/ca.pem")
    assert parsed.nodes == (("a", 7000), ("b", 6379)) and parsed.ssl
    assert (parsed.username, parsed.password) == ("u", "p@ss")
    assert parsed.ssl_options == {"ssl_ca_certs": "/ca.pem"}
    assert (
        safe_url("redis+cluster://u:secret@a:7000,b:7001") == "redis+cluster://u:***@a:7000,b:7001"
    )
    with pytest.raises(ValueError, match="TLS parameters"):
        parse_cluster_url("redis+cluster://a:1?ssl_ca_certs=/ca.pem")
    with pytest.raises(ValueError, match="Cluster node port"):
        parse_cluster_url("redis+cluster://a:99999")


def test_a_cluster_url_is_parsed_and_checked() -> None:
    with pytest.raises(RedisUnavailable, match="only database 0"):
        Client(Settings(redis_url="redis+cluster://127.0.0.1:1/3"))
    with pytest.raises(InvalidArgument, match="WAIT_REPLICAS"):
        Client(Settings(redis_url="redis+cluster://127.0.0.1:1", wait_replicas=1))
    with pytest.raises(RedisUnavailable, match="cannot reach") as refused:
        Client(Settings(redis_url="redis+cluster://u:pw-secret@127.0.0.1:1"))
    assert "pw-secret" not in str(refused.value)


async def test_supervisor_and_dashboard_ride_out_a_primary_failover(
    redis_cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = "cl-" + uuid.uuid4().hex[:8]
    settings = Settings(redis_url=redis_cluster.url(*redis_cluster.nodes), namespace=namespace,
                        socket_timeout_s=3.0, block_timeout_s=1.0, lease_ms=4_000)  # fmt: skip
    port = consecutive_free_ports(2)
    group = await serve_comfyui("127.0.0.1", port, 2)
    config = SupervisorConfig(
        settings=settings,
        host_id="cluster-node",
        backends=(BackendSpec("comfyui", f"http://127.0.0.1:{{port:{port}}}"),),
        simulate_gpus=2,
    )
    supervisor = Supervisor(config)
    task = asyncio.create_task(supervisor.run(), name="supervisor-cluster")
    ids: list[str] = []
    try:
        await asyncio.wait_for(supervisor.ready.wait(), 30)
        async with AsyncClient(settings) as client:
            for seed in range(10):
                await submit_retrying(client, seed, ids)
            await until_states(client, ids[:3], {JobState.COMPLETED}, 60)
            _old, failover_s = await asyncio.to_thread(
                redis_cluster.fail_primary, namespace_slot(namespace)
            )
            for seed in range(10, 20):
                await submit_retrying(client, seed, ids)
            await until_states(client, ids, {JobState.COMPLETED}, 120)
        dashboard = RedisSource(AsyncClient(settings))
        try:
            read = await dashboard.read(ReadRequest(JobFilter(state="completed"), page_size=50))
        finally:
            await dashboard.aclose()
        assert not task.done(), "the supervisor kept running"
    finally:
        supervisor.request_stop()
        supervisor.request_stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 60)
        await group.aclose()
    with capsys.disabled():
        print(f"\n[cluster] 20 jobs completed, a replica took over after {failover_s:.2f} s")
    stats = read.stats.service("comfyui")
    assert stats is not None and stats.completed == 20
    assert {j.id for j in read.jobs} == set(ids)
    assert [h.host for h in read.fleet.hosts] == ["cluster-node"]


async def submit_retrying(client: AsyncClient, seed: int, ids: list[str]) -> None:
    """Submit one job with an idempotency key, resent while the shard fails over."""
    while True:
        try:
            job = await client.submit(
                fake_work_workflow(0.2, 2, seed=seed), idempotency_key=str(seed)
            )
        except RedisUnavailable:
            await asyncio.sleep(0.1)
            continue
        ids.append(job.id)
        return


async def until_states(
    client: AsyncClient, ids: list[str], states: set[JobState], timeout_s: float
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    seen: dict[str, Any] = {}
    while True:
        with contextlib.suppress(RedisUnavailable):
            seen = {i: (await client.status(i)).state for i in ids}
            if all(s in states for s in seen.values()):
                return
        if loop.time() > deadline:
            raise AssertionError(f"not {states} within {timeout_s} s: {seen}")
        await asyncio.sleep(0.2)  # the supervisor runs the jobs; polling the outcome is the test
