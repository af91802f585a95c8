"""Supervisors as separate processes: SIGKILL mid-job, SIGTERM drain; and a Redis outage."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fleetq import AsyncClient, Settings
from fleetq.demo.embedded import RedisServer
from supervisor.sim.comfyui.workflows import fake_work_workflow
from supervisor.sim.group import FakeGroup

from .conftest import (  # type: ignore[import-not-found]
    LOG_DIR,
    eventually,
    make_config,
    running_supervisor,
    supervisor_process,
)

pytestmark = pytest.mark.slow
Start = Callable[[int], Awaitable[FakeGroup[Any]]]
FAST_LEASE = {"FLEETQ_LEASE_MS": "1500"}


async def running_on(job: Any, host: str) -> bool:
    status = await job.status()
    return bool(status.state.value == "running" and status.host == host)


async def exited(process: Any) -> int:
    return int(await asyncio.to_thread(process.wait, 30))


async def test_sigkill_mid_job_requeues_to_another_supervisor(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(2)
    a = supervisor_process(settings, "node-a", 1, f"comfyui=http://127.0.0.1:{fakes[0].port}",
                           env=FAST_LEASE)  # fmt: skip
    b = None
    try:
        job = await aclient.submit(fake_work_workflow(3.0, 6, seed=41))
        await eventually(lambda: running_on(job, "node-a"), timeout_s=30)
        b = supervisor_process(settings, "node-b", 1, f"comfyui=http://127.0.0.1:{fakes[1].port}",
                               env=FAST_LEASE)  # fmt: skip
        a.send_signal(signal.SIGKILL)
        assert await exited(a) == -signal.SIGKILL
        result = await job.wait(timeout_s=60)
        assert result.outputs
        status = await job.status()
        assert (status.host, status.claims, status.lost_leases, status.attempts) == (
            "node-b", 2, 1, 0,
        )  # fmt: skip
        assert [t.host for t in status.timeline] == ["node-a", "node-b"]
        assert status.timeline[0].outcome == "lost"
    finally:
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


async def test_sigterm_drains_running_job_and_claims_nothing_new(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    sup = supervisor_process(settings, "node-t", 1, f"comfyui=http://127.0.0.1:{fakes[0].port}",
                             "--grace-s", "20")  # fmt: skip
    try:
        running = await aclient.submit(fake_work_workflow(2.0, 4, seed=42))
        await eventually(lambda: running_on(running, "node-t"), timeout_s=30)
        sup.send_signal(signal.SIGTERM)
        later = await aclient.submit(fake_work_workflow(0.1, 0, seed=43))
        assert await exited(sup) == 0
        status = await running.status()
        assert status.state.value == "completed" and status.claims == 1
        assert (await later.status()).claims == 0  # queued, never claimed while draining
        assert not [h for h in (await aclient.fleet()).hosts if h.online]  # withdrew at exit
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()


async def test_sigterm_requeues_what_outlives_the_grace_period_without_charge(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    sup = supervisor_process(settings, "node-g", 1, f"comfyui=http://127.0.0.1:{fakes[0].port}",
                             "--grace-s", "1")  # fmt: skip
    try:
        job = await aclient.submit(fake_work_workflow(30.0, 30, seed=44))
        await eventually(lambda: running_on(job, "node-g"), timeout_s=30)
        sup.send_signal(signal.SIGTERM)
        assert await exited(sup) == 0
        status = await job.status()
        assert (status.state.value, status.attempts, status.position) == ("queued", 0, 0)
        assert status.error is not None and status.error.type == "Shutdown"
        assert fakes[0].state()["running"] == []  # the backend was interrupted
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()


async def test_redis_outage_mid_job_loses_nothing(comfy_factory: Start) -> None:
    fakes = await comfy_factory(1)
    with RedisServer(appendonly=True, appendfsync="always") as server:
        settings = Settings(redis_url=server.url, namespace="outage", lease_ms=1500,
                            socket_timeout_s=3.0, block_timeout_s=1.0)  # fmt: skip
        async with AsyncClient(settings) as client:
            config = make_config(settings, "node-o", 1, {"comfyui": fakes[0].port})
            async with running_supervisor(config):
                job = await client.submit(fake_work_workflow(4.0, 8, seed=45))
                await eventually(lambda: running_on(job, "node-o"), timeout_s=30)
                server.kill()
                # Redis stays down for longer than a lease; the job keeps running meanwhile.
                await asyncio.sleep(3.0)
                await asyncio.to_thread(server.start)
                result = await job.wait(timeout_s=60)
                assert result.outputs
                status = await job.status()
                assert (status.claims, status.lost_leases, status.attempts) == (1, 0, 0)


async def test_supervisor_started_while_redis_is_down_waits_for_it(comfy_factory: Start) -> None:
    from fleetq.demo.embedded import free_port

    fakes = await comfy_factory(1)
    port = free_port()
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", namespace="late")
    log = Path(LOG_DIR) / "supervisor-node-late.log"
    log.unlink(missing_ok=True)
    sup = supervisor_process(settings, "node-late", 1, f"comfyui=http://127.0.0.1:{fakes[0].port}")
    try:
        # Start Redis only once the supervisor has found it down and said so.
        await eventually(lambda: log.exists() and "supervisor start: Redis" in log.read_text())
        with RedisServer(port=port) as server:
            async with AsyncClient(settings) as client:
                job = await client.submit(fake_work_workflow(0.2, 0, seed=46))
                await job.wait(timeout_s=60)
            del server
        assert sup.poll() is None  # it waited for Redis, then worked
    finally:
        sup.terminate()
        assert await exited(sup) == 0
