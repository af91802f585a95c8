"""A real supervisor (in-process, two simulated GPUs, fake ComfyUI servers) and a client, both on
a password-protected ``redis+sentinel://`` URL, keep working when the primary is SIGKILLed."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

import pytest
from ha_testkit import HaCluster

from fleetq import AsyncClient, Settings
from fleetq.demo.processes import consecutive_free_ports
from fleetq.errors import JobNotFound, RedisUnavailable
from fleetq.model import JobState
from supervisor.app import Supervisor
from supervisor.config import BackendSpec, SupervisorConfig
from supervisor.sim.comfyui import serve_comfyui
from supervisor.sim.comfyui.workflows import fake_work_workflow

pytestmark = pytest.mark.slow


async def submit_retrying(client: AsyncClient, seed: int, ids: list[str]) -> None:
    """Submit one job; while Redis is away, retry (a refused submit was not written)."""
    while True:
        try:
            job = await client.submit(fake_work_workflow(0.2, 2, seed=seed))
        except RedisUnavailable:
            await asyncio.sleep(0.1)
            continue
        ids.append(job.id)
        return


async def final_states(client: AsyncClient, ids: list[str]) -> dict[str, Any]:
    states: dict[str, Any] = {}
    for job_id in ids:
        try:
            states[job_id] = (await client.status(job_id)).state
        except JobNotFound:
            states[job_id] = None
    return states


async def test_supervisor_and_client_follow_a_sigkill_failover(
    ha_with_password: HaCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    ha = ha_with_password
    settings = Settings(redis_url=ha.url(), namespace="ha-" + uuid.uuid4().hex[:8],
                        socket_timeout_s=5.0, block_timeout_s=1.0, lease_ms=3_000)  # fmt: skip
    port = consecutive_free_ports(2)
    group = await serve_comfyui("127.0.0.1", port, 2)
    config = SupervisorConfig(
        settings=settings,
        host_id="ha-node",
        backends=(BackendSpec("comfyui", f"http://127.0.0.1:{{port:{port}}}"),),
        simulate_gpus=2,
    )
    supervisor = Supervisor(config)
    task = asyncio.create_task(supervisor.run(), name="supervisor-ha")
    ids: list[str] = []
    try:
        await asyncio.wait_for(supervisor.ready.wait(), 30)
        async with AsyncClient(settings) as client:
            for seed in range(20):
                await submit_retrying(client, seed, ids)
            await until_completed(client, ids[:5], 60)
            old = ha.primary()
            started = time.monotonic()
            await asyncio.to_thread(ha.kill_primary)
            promoted_s = time.monotonic() - started
            for seed in range(20, 40):
                await submit_retrying(client, seed, ids)
            await asyncio.to_thread(ha.restart_as_replica, old)
            await until_settled(client, ids, 90)
            states = await final_states(client, ids)
        assert not task.done(), "the supervisor kept running"
    finally:
        supervisor.request_stop()
        supervisor.request_stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(task, 60)
        await group.aclose()
    lost = [j for j, s in states.items() if s is None]
    with capsys.disabled():
        print(f"\n[supervisor, sigkill] {len(ids)} jobs acknowledged, {len(lost)} lost, "
              f"new primary after {promoted_s:.2f} s")  # fmt: skip
    # Everything that survived the failover ran to completion on the same supervisor.
    assert all(s is JobState.COMPLETED for s in states.values() if s is not None)
    assert all(states[j] is JobState.COMPLETED for j in ids[20:]), "jobs after the failover"


async def until_completed(client: AsyncClient, ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        states = await final_states(client, ids)
        if all(s is JobState.COMPLETED for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not completed in {timeout_s} s: {states}")
        await asyncio.sleep(0.2)  # the supervisor runs the jobs; polling the outcome is the test


async def until_settled(client: AsyncClient, ids: list[str], timeout_s: float) -> None:
    """Until every job is completed or gone (lost in the failover)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            states = await final_states(client, ids)
        except RedisUnavailable:
            states = {}
        if states and all(s in (None, JobState.COMPLETED) for s in states.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled in {timeout_s} s: {states}")
        await asyncio.sleep(0.2)
