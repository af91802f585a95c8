"""A supervisor end to end against a real Redis, from the hub's side: a drained machine passes
every wake-up on, a machine holds two Redis connections whatever its GPU count, and what it must
react to at once (a cancel, an operator command, a drain) reaches it while its one blocking
connection waits for work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from fleetq import AsyncClient, Client, Settings
from fleetq.demo.embedded import RedisServer, redis_server_binary
from fleetq.errors import JobCancelled
from supervisor.sim.comfyui.workflows import fake_work_workflow
from supervisor.sim.group import FakeGroup

from .conftest import eventually, make_config, running_supervisor  # type: ignore[import-not-found]

pytestmark = pytest.mark.slow
Start = Callable[[int], Awaitable[FakeGroup[Any]]]
#: Blocking reads and idle pullers wait this long: a wake-up left for a timeout to find shows
#: as a job that does not start before the test's deadline.
LONG_S = 30.0
DEADLINE_S = 10.0


async def _blocked(raw: aioredis.Redis, at_least: int) -> bool:
    try:
        return int((await raw.info("clients"))["blocked_clients"]) >= at_least
    except redis.exceptions.ConnectionError:
        return False


async def test_a_drained_machine_does_not_swallow_the_next_submits_wakeup(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    slow = settings.with_overrides(block_timeout_s=LONG_S, socket_timeout_s=LONG_S + 10)
    fakes = await comfy_factory(2)
    drained = make_config(slow, "m-drained", 1, {"comfyui": fakes[0].port},
                          claim_block_s=LONG_S)  # fmt: skip
    healthy = make_config(slow, "m-healthy", 1, {"comfyui": fakes[1].port},
                          claim_block_s=LONG_S)  # fmt: skip
    raw = aioredis.Redis.from_url(settings.redis_url)
    try:
        base = int((await raw.info("clients"))["blocked_clients"])
        # Each machine blocks once, on its work markers and its signal; the drained one gets
        # in line first.
        async with running_supervisor(drained):
            await eventually(lambda: _blocked(raw, base + 1))
            async with running_supervisor(healthy):
                await eventually(lambda: _blocked(raw, base + 2))
                await aclient.drain("m-drained")
                for seed in range(3):
                    job = await aclient.submit(fake_work_workflow(0.05, 0, seed=seed))
                    await job.wait(timeout_s=DEADLINE_S)
                    assert (await job.status()).host == "m-healthy"
    finally:
        await raw.aclose()


async def _supervisor_connections(raw: aioredis.Redis) -> int:
    """Connections without a name: the supervisor's (the test names its own)."""
    return sum(1 for c in await raw.client_list() if not c.get("name"))


@pytest.mark.skipif(redis_server_binary() is None, reason="needs redis-server")
async def test_a_machine_holds_two_connections_whatever_its_gpu_count(
    comfy_factory: Start,
) -> None:
    gpus = 8
    with RedisServer() as server:
        settings = Settings(redis_url=server.url, socket_timeout_s=5.0, block_timeout_s=1.0)
        named = settings.with_overrides(redis_url=server.url + "?client_name=test")
        fakes = await comfy_factory(gpus)
        config = make_config(settings, "m8", gpus, {"comfyui": fakes[0].port})
        raw = aioredis.Redis.from_url(named.redis_url)
        try:
            async with AsyncClient(named) as client, running_supervisor(config):
                jobs = [
                    await client.submit(fake_work_workflow(1.0, 4, seed=s)) for s in range(gpus)
                ]

                async def all_running() -> bool:
                    states = [(await j.status()).state.value for j in jobs]
                    return states.count("running") == gpus

                # Every GPU runs a job (each job's stream watched for cancels) ...
                await eventually(all_running)
                assert await _supervisor_connections(raw) == 2
                await client.cancel(jobs[0].id)
                await asyncio.gather(*(j.wait(timeout_s=DEADLINE_S) for j in jobs[1:]))
                # ... and every GPU is idle again, waiting for work.
                assert await _supervisor_connections(raw) == 2
        finally:
            await raw.aclose()


def _slow(settings: Settings) -> Settings:
    """Blocking pops, claim waits and lease renewals all far longer than the test's deadline:
    what arrives in time was delivered by a signal."""
    return settings.with_overrides(
        block_timeout_s=LONG_S, socket_timeout_s=LONG_S + 10, lease_ms=int(6 * LONG_S * 1000)
    )


async def test_a_cancel_interrupts_a_running_job_while_the_machine_waits_for_work(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(2)
    config = make_config(_slow(settings), "m1", 2, {"comfyui": fakes[0].port},
                         claim_block_s=LONG_S)  # fmt: skip
    async with running_supervisor(config) as supervisor:
        job = await aclient.submit(fake_work_workflow(1.0, 0, "hang", seed=1))

        queue = supervisor.pullers[0].queue

        def running_and_idle() -> bool:
            states = sorted(p.state.status for p in supervisor.pullers.values())
            blocked_on = queue.wakeups.covering
            return (
                states == ["idle", "running"]
                and queue.keys.marker("comfyui") in blocked_on
                and queue.keys.signal("m1") in blocked_on
                and queue.keys.job_events(job.id) in queue.watcher.following  # read once
            )

        await eventually(running_and_idle)  # one GPU runs it, the other blocks for work
        signals = queue.wakeups.signals
        assert await aclient.cancel(job.id) == "cancelling"
        with pytest.raises(JobCancelled):
            await job.wait(timeout_s=DEADLINE_S)
        assert queue.wakeups.signals > signals  # the cancel's signal woke the blocked pop
        gpu = (await job.status()).gpu or 0
        assert fakes[gpu].state()["running"] == []  # the backend was interrupted


async def test_an_operator_drain_reaches_the_machine_while_it_waits_for_work(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    config = make_config(_slow(settings), "m1", 1, {"comfyui": fakes[0].port},
                         claim_block_s=LONG_S)  # fmt: skip
    async with running_supervisor(config) as supervisor:
        puller, queue = supervisor.pullers[0], supervisor.pullers[0].queue
        await eventually(lambda: queue.keys.marker("comfyui") in queue.wakeups.covering)
        await aclient.drain("m1")
        await eventually(
            lambda: puller.state.blocked == "drained by operator", timeout_s=DEADLINE_S
        )


async def test_an_operator_command_reaches_the_machine_while_it_waits_for_work(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    config = make_config(_slow(settings), "m1", 1, {"comfyui": fakes[0].port},
                         claim_block_s=LONG_S)  # fmt: skip
    async with running_supervisor(config) as supervisor:
        queue = supervisor.pullers[0].queue

        def waiting_for_work() -> bool:
            # The command stream was read once; the one blocking pop covers work and signal.
            blocked_on = queue.wakeups.covering
            return (
                queue.keys.control("m1") in queue.watcher.following
                and queue.keys.marker("comfyui") in blocked_on
                and queue.keys.signal("m1") in blocked_on
            )

        await eventually(waiting_for_work)
        with Client(settings) as client:
            client.send_control("m1", {"type": "fault", "gpu": 0, "spec": "xid=79"})
        monitor = supervisor.monitor
        assert monitor is not None

        async def unhealthy() -> bool:
            return not (await monitor.check(0)).can_claim

        await eventually(unhealthy, timeout_s=DEADLINE_S)
