"""The shared wake-up waiter of a supervisor, through the worker API's claim loop (the one every
puller runs), against a real Redis: no wake-up is lost or swallowed, idle claimers of one
machine take turns, and the waiter reconnects after a Redis restart."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import pytest
import redis
import redis.asyncio as aioredis

from fleetq import AsyncClient, Settings
from fleetq.demo.embedded import RedisServer, redis_server_binary
from fleetq.errors import RedisUnavailable
from fleetq.worker import ClaimOutcome, WorkerQueue

from .conftest import eventually  # type: ignore[import-not-found]

SERVICE = "comfyui"
WORKFLOW = {"1": {"class_type": "KSampler", "inputs": {}}}
#: Long enough that a claimer left waiting for its own timeout fails the test's deadline.
LONG_S = 60.0
DEADLINE_S = 15.0


@pytest.fixture
async def raw(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


async def blocked_clients(raw: aioredis.Redis) -> int:
    return int((await raw.info("clients"))["blocked_clients"])


async def start_waiting(
    raw: aioredis.Redis,
    queue: WorkerQueue,
    host: str,
    gpu: int,
    stop: asyncio.Event | None = None,
    may_claim: Sequence[str] | None = None,
) -> asyncio.Task[ClaimOutcome]:
    """A claimer that waits for work; returns once its machine's waiter blocks in Redis, so
    the order in which machines wait is the order Redis serves them."""
    before = await blocked_clients(raw)
    already_waiting = queue.wakeups.idle_claimers
    task = asyncio.create_task(queue.claim([SERVICE], host, gpu, LONG_S, stop=stop))
    await eventually(lambda: queue.wakeups.idle_claimers > already_waiting)
    if already_waiting == 0:
        await eventually(lambda: _more_blocked(raw, before))
    return task


async def _more_blocked(raw: aioredis.Redis, before: int) -> bool:
    try:
        return await blocked_clients(raw) > before
    except (ConnectionError, OSError, redis.exceptions.ConnectionError):
        return False  # Redis is restarting


async def test_a_drain_reaches_the_blocked_machine_which_leaves_the_wakeup_to_a_healthy_one(
    settings: Settings, aclient: AsyncClient, raw: aioredis.Redis, queues: list[WorkerQueue]
) -> None:
    drained, healthy = WorkerQueue(settings), WorkerQueue(settings)
    queues += [drained, healthy]
    on_drained = await start_waiting(raw, drained, "host-a", 0)  # first in Redis's line
    on_healthy = await start_waiting(raw, healthy, "host-b", 0)
    await aclient.drain("host-a")
    # The drain signals host-a: its idle claimer checks again at once, long before its wait
    # would end, and stops waiting for work.
    assert (await asyncio.wait_for(on_drained, DEADLINE_S)).drained
    job = await aclient.submit(WORKFLOW, service=SERVICE)
    outcome = await asyncio.wait_for(on_healthy, DEADLINE_S)
    assert outcome.job is not None and outcome.job.id == job.id
    assert drained.wakeups.popped == 0 and drained.wakeups.signals == 1


async def test_a_claimer_whose_gate_closed_hands_the_wakeup_to_the_next_idle_one(
    settings: Settings, aclient: AsyncClient, raw: aioredis.Redis, queues: list[WorkerQueue]
) -> None:
    queue = WorkerQueue(settings)
    queues.append(queue)
    gate_open = True

    async def gate() -> list[str]:
        return [SERVICE] if gate_open else []

    first = asyncio.create_task(queue.claim([SERVICE], "h", 0, LONG_S, may_claim=gate))
    await eventually(lambda: queue.wakeups.idle_claimers == 1)
    second = asyncio.create_task(queue.claim([SERVICE], "h", 1, LONG_S))
    await eventually(lambda: queue.wakeups.idle_claimers == 2)
    gate_open = False  # GPU 0 turns unhealthy while it waits
    job = await aclient.submit(WORKFLOW, service=SERVICE)
    outcome = await asyncio.wait_for(second, DEADLINE_S)
    assert outcome.job is not None and outcome.job.id == job.id
    gated = await asyncio.wait_for(first, DEADLINE_S)
    assert gated.job is None and not gated.drained
    assert queue.wakeups.popped == 1 and queue.wakeups.returned == 0  # handed over locally


async def test_a_claimer_whose_gate_dropped_the_woken_service_passes_that_wakeup_on(
    settings: Settings, aclient: AsyncClient, queues: list[WorkerQueue]
) -> None:
    queue = WorkerQueue(settings)
    queues.append(queue)
    services = [SERVICE, "a1111"]

    async def gate() -> list[str]:
        return services

    first = asyncio.create_task(queue.claim(services, "h", 0, LONG_S, may_claim=gate))
    await eventually(lambda: queue.wakeups.idle_claimers == 1)
    second = asyncio.create_task(queue.claim([SERVICE], "h", 1, LONG_S))
    await eventually(lambda: queue.wakeups.idle_claimers == 2)
    services = ["a1111"]  # GPU 0's ComfyUI turns busy while it waits; its A1111 is free
    job = await aclient.submit(WORKFLOW, service=SERVICE)
    outcome = await asyncio.wait_for(second, DEADLINE_S)
    assert outcome.job is not None and outcome.job.id == job.id
    first.cancel()


async def test_a_wakeup_for_a_machine_whose_claimers_went_busy_goes_back_to_the_fleet(
    settings: Settings, aclient: AsyncClient, raw: aioredis.Redis, queues: list[WorkerQueue]
) -> None:
    busy, idle = WorkerQueue(settings), WorkerQueue(settings)
    queues += [busy, idle]
    leaving = asyncio.Event()
    on_busy = await start_waiting(raw, busy, "host-a", 0, stop=leaving)
    on_idle = await start_waiting(raw, idle, "host-b", 0)
    leaving.set()  # the claimer stops waiting; its machine's BZPOPMIN is still armed
    assert (await asyncio.wait_for(on_busy, DEADLINE_S)).job is None
    job = await aclient.submit(WORKFLOW, service=SERVICE)
    outcome = await asyncio.wait_for(on_idle, DEADLINE_S)
    assert outcome.job is not None and outcome.job.id == job.id
    assert busy.wakeups.popped == 1 and busy.wakeups.returned == 1


async def test_idle_claimers_of_one_machine_take_turns(
    settings: Settings, aclient: AsyncClient, queues: list[WorkerQueue]
) -> None:
    queue = WorkerQueue(settings)
    queues.append(queue)
    stop = asyncio.Event()
    ran: list[int] = []

    async def claimer(gpu: int) -> None:
        while not stop.is_set():
            outcome = await queue.claim([SERVICE], "h", gpu, LONG_S, stop=stop)
            if outcome.job is not None:
                ran.append(gpu)
                await queue.complete(outcome.job, [])

    gpus = 4
    claimers = [asyncio.create_task(claimer(gpu)) for gpu in range(gpus)]
    try:
        for _ in range(3 * gpus):
            await eventually(lambda: queue.wakeups.idle_claimers == gpus)
            job = await aclient.submit(WORKFLOW, service=SERVICE)
            await job.wait(timeout_s=DEADLINE_S)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*claimers), DEADLINE_S)
    assert Counter(ran) == {gpu: 3 for gpu in range(gpus)}


@pytest.mark.skipif(redis_server_binary() is None, reason="needs redis-server")
async def test_the_shared_waiter_reconnects_after_a_redis_restart() -> None:
    with RedisServer() as server:
        settings = Settings(redis_url=server.url, socket_timeout_s=5.0, block_timeout_s=1.0)
        queue = WorkerQueue(settings)
        raw = aioredis.Redis.from_url(server.url)
        stop = asyncio.Event()

        async def puller() -> ClaimOutcome:
            """Claims like a puller: a Redis outage costs a backoff, never the puller."""
            while True:
                try:
                    outcome = await queue.claim([SERVICE], "h", 0, LONG_S, stop=stop)
                except RedisUnavailable:
                    await asyncio.sleep(0.2)  # the puller's reconnect backoff
                    continue
                if outcome.job is not None or stop.is_set():
                    return outcome

        try:
            waiting = asyncio.create_task(puller())
            await eventually(lambda: _more_blocked(raw, 0))
            server.restart(crash=True)
            await eventually(lambda: _more_blocked(raw, 0), timeout_s=DEADLINE_S)
            async with AsyncClient(settings) as client:
                job = await client.submit(WORKFLOW, service=SERVICE)
            outcome = await asyncio.wait_for(waiting, DEADLINE_S)
            assert outcome.job is not None and outcome.job.id == job.id
        finally:
            stop.set()
            await raw.aclose()
            await queue.aclose()


async def test_a_claimer_that_stops_as_it_is_woken_claims_nothing_and_passes_it_on(
    settings: Settings, raw: aioredis.Redis, queues: list[WorkerQueue]
) -> None:
    queue = WorkerQueue(settings)
    queues.append(queue)
    stop = asyncio.Event()
    claiming = asyncio.create_task(queue.claim([SERVICE], "h", 0, LONG_S, stop=stop))
    await eventually(lambda: queue.wakeups.idle_claimers == 1)
    # The supervisor drains at the moment a wake-up is handed to this claimer.
    assert queue.wakeups._hand_out(SERVICE)
    stop.set()
    outcome = await asyncio.wait_for(claiming, DEADLINE_S)
    assert outcome.job is None
    await eventually(lambda: queue.wakeups.returned == 1)
    assert await raw.zcard(queue.keys.marker(SERVICE)) == 1  # back in Redis for the fleet


async def test_a_claimer_for_a_service_the_blocked_pop_leaves_out_is_served_at_once(
    settings: Settings, aclient: AsyncClient, queues: list[WorkerQueue]
) -> None:
    slow = settings.with_overrides(block_timeout_s=LONG_S, socket_timeout_s=LONG_S + 10)
    queue = WorkerQueue(slow)
    queues.append(queue)
    queue.listen_for_signals("h")  # the waiter blocks on the machine's signal alone
    signal_only = frozenset({queue.keys.signal("h")})
    await eventually(lambda: queue.wakeups.covering == signal_only)
    # A GPU turns idle: the pop in flight is re-armed with its service's marker in, instead
    # of leaving it uncovered until the pop times out.
    claiming = asyncio.create_task(queue.claim([SERVICE], "h", 0, LONG_S))
    await eventually(
        lambda: queue.keys.marker(SERVICE) in queue.wakeups.covering, timeout_s=DEADLINE_S
    )
    job = await aclient.submit(WORKFLOW, service=SERVICE)
    outcome = await asyncio.wait_for(claiming, DEADLINE_S)
    assert outcome.job is not None and outcome.job.id == job.id
    assert queue.wakeups.signals == 0  # a re-arm is no signal to the machine's listeners
