"""A write whose reply is lost (a dropped connection, a Redis stall longer than the socket
timeout) is resent by redis-py with the same arguments; the resend must be answered like the
first, without a second effect.

Replies are lost for real: through :class:`~fault_proxy.FaultProxy` (the command reaches Redis,
the client's connection is cut before the reply) or by ``DEBUG SLEEP`` on a private Redis."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fault_proxy import FaultProxy

from fleetq import Client, InvalidTransition, Settings
from fleetq.demo.embedded import RedisServer
from fleetq.model import FaultKind, JobError
from fleetq.scripts import script_source
from fleetq.worker import WorkerQueue


def sha_of(script: str) -> bytes:
    """The marker of one script's EVALSHA on the wire."""
    return hashlib.sha1(script_source(script).encode()).hexdigest().encode()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[FaultProxy]:
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with FaultProxy(port) as p:
        yield p


@pytest.fixture
def lossy(settings: Settings, proxy: FaultProxy) -> Settings:
    """The test's namespace, reached through the proxy."""
    return settings.with_overrides(redis_url=proxy.url)


@pytest.fixture(scope="module")
def debug_redis() -> Iterator[RedisServer]:
    """A private Redis that allows DEBUG SLEEP (a stall of the whole server)."""
    with RedisServer(extra_args=("--enable-debug-command", "yes")) as server:
        yield server


def stall(server: RedisServer, seconds: float) -> threading.Thread:
    """Freeze Redis for ``seconds`` from another connection; returns once it is frozen."""
    r = redis.Redis(port=server.port)
    frozen = threading.Event()

    def sleep() -> None:
        try:
            frozen.set()
            r.execute_command("DEBUG", "SLEEP", seconds)
        finally:
            r.close()

    thread = threading.Thread(target=sleep, daemon=True)
    thread.start()
    frozen.wait()
    return thread


async def test_a_resent_claim_gets_the_job_the_first_one_leased(
    client: Client, lossy: Settings, proxy: FaultProxy, graph: dict[str, Any]
) -> None:
    worker = WorkerQueue(lossy)
    try:
        assert (await worker.try_claim(["comfyui"], "h", 0)).job is None  # script loaded
        first, second = client.submit(graph, priority=5), client.submit(graph)
        proxy.drop_next(sha_of("claim"))
        claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
        assert proxy.dropped == 1
        assert claimed is not None and claimed.id == first.id
        assert first.status().state.value == "running"
        assert second.status().state.value == "queued"  # not leased to nobody
    finally:
        await worker.aclose()


async def test_a_stall_longer_than_the_socket_timeout_orphans_no_claim(
    debug_redis: RedisServer, namespace: str, graph: dict[str, Any]
) -> None:
    settings = Settings(
        redis_url=debug_redis.url, namespace=namespace, socket_timeout_s=1.0, block_timeout_s=0.5
    )
    client = Client(settings)
    workers = [WorkerQueue(settings) for _ in range(8)]
    try:
        assert (await workers[0].try_claim(["comfyui"], "h", 0)).job is None  # script loaded
        ids = {client.submit(graph).id for _ in range(16)}
        thread = stall(debug_redis, 2.5)
        outcomes = await asyncio.gather(
            *(w.try_claim(["comfyui"], "h", i) for i, w in enumerate(workers))
        )
        thread.join()
        held = {o.job.id for o in outcomes if o.job is not None}
        running = {j.id for j in client.jobs("running", limit=100)}
        assert len(held) == 8 and running == held
        assert {j.id for j in client.jobs("queued", limit=100)} == ids - held
    finally:
        client.close()
        await asyncio.gather(*(w.aclose() for w in workers))


async def test_a_resent_retry_pause_or_drain_is_answered_like_the_first(
    client: Client, worker: WorkerQueue, lossy: Settings, proxy: FaultProxy, graph: dict[str, Any]
) -> None:
    job = client.submit(graph, max_attempts=1)
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None
    assert await worker.fail(claimed, FaultKind.JOB, JobError("E", "x")) == "failed"
    with Client(lossy) as operator:
        # Load each script first: a first EVALSHA answered NOSCRIPT would not run at all.
        assert operator.resume("comfyui") is False and operator.undrain("h") is False
        with pytest.raises(InvalidTransition):
            operator.retry(client.submit(graph).id)

        proxy.drop_next(sha_of("retry"))
        assert operator.retry(job.id) == 0  # its old place; not "cannot retry: it is queued"
        proxy.drop_next(sha_of("set_paused"))
        assert operator.pause("comfyui") is True
        proxy.drop_next(sha_of("set_paused"))
        assert operator.resume("comfyui") is True
        proxy.drop_next(sha_of("set_drained"))
        assert operator.drain("h:0") is True
        assert proxy.dropped == 4
        # A second, distinct request still says that nothing changed.
        assert operator.drain("h:0") is False and operator.resume("comfyui") is False
        with pytest.raises(InvalidTransition):
            operator.retry(job.id)
    assert job.status().state.value == "queued"


async def test_a_resent_bump_is_answered_like_the_first_after_a_claim(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    """The bump runs, its reply is lost, a GPU claims the job, then the resend arrives (seen in
    a chaos run: the operator was told "cannot bump: it is running" for an applied bump)."""
    job = client.submit(graph)
    call = client.store.protocol.bump(job.id, 7)  # one request: its resend has the same args
    assert client.store.run(call) == 0
    assert (await worker.try_claim(["comfyui"], "h", 0)).job is not None
    assert client.store.run(call) is None  # applied: no position, since it runs now
    with pytest.raises(InvalidTransition):  # a new bump of a running job is still refused
        client.bump(job.id, 3)
    assert job.status().priority == 7


async def test_a_resent_relative_bump_is_applied_once(
    client: Client, lossy: Settings, proxy: FaultProxy, graph: dict[str, Any]
) -> None:
    """A "+1" whose reply is lost is resent by redis-py with the same request id: the job moves
    by one, not two, and the resend answers like the first."""
    job = client.submit(graph, priority=1)
    with Client(lossy) as operator:
        assert operator.bump_by(job.id, 1).priority == 2  # loads the script first
        proxy.drop_next(sha_of("bump_by"))
        bumped = operator.bump_by(job.id, 1)
        assert proxy.dropped == 1
        assert (bumped.old_priority, bumped.priority) == (2, 3)
        assert operator.bump_by(job.id, 1).priority == 4  # a new request still counts
    assert job.status().priority == 4


async def test_a_resent_relative_bump_after_a_claim_is_answered_like_the_first(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    job = client.submit(graph, priority=1)
    call = client.store.protocol.bump_by(job.id, 5)  # one request: its resend has the same args
    first = client.store.run(call)
    assert (first.old_priority, first.priority, first.position) == (1, 6, 0)
    assert (await worker.try_claim(["comfyui"], "h", 0)).job is not None
    again = client.store.run(call)
    assert (again.old_priority, again.priority, again.position) == (1, 6, None)
    assert job.status().priority == 6
