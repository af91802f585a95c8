"""End to end inside one process: real Redis, fake backends as real servers, simulated GPUs,
the real supervisor (pullers, adapters, publisher, reaper)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fleetq import AsyncClient, Client, JobCancelled, JobFailed, JobState, Settings
from supervisor.sim.comfyui.workflows import fake_work_workflow
from supervisor.sim.group import FakeGroup

from .conftest import eventually, make_config, running_supervisor  # type: ignore[import-not-found]

pytestmark = pytest.mark.slow
Start = Callable[[int], Awaitable[FakeGroup[Any]]]


async def gpu_record(client: AsyncClient, host: str, index: int) -> dict[str, Any] | None:
    for view in (await client.fleet()).hosts:
        if view.host == host and view.online:
            for gpu in view.gpus:
                if gpu.index == index:
                    return gpu.to_json()
    return None


async def test_a_long_job_does_not_delay_short_jobs(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(2)
    config = make_config(settings, "m1", 2, {"comfyui": fakes[0].port})
    async with running_supervisor(config):
        long_job = await aclient.submit(fake_work_workflow(30, 30, seed=1))
        await eventually(lambda: _state_is(long_job, "running"))
        shorts = [await aclient.submit(fake_work_workflow(0.2, 2, seed=10 + i)) for i in range(6)]
        results = await asyncio.wait_for(asyncio.gather(*(j.wait() for j in shorts)), 20)
        assert all(
            len(r.outputs) == 1 and r.outputs[0].data.startswith(b"\x89PNG") for r in results
        )
        long_status = await long_job.status()
        assert long_status.state.value == "running"
        ran_on = {(await j.status()).gpu for j in shorts}
        assert ran_on == {1 - (long_status.gpu or 0)}  # every short job took the other GPU

        # Cancelling the running long job interrupts the backend within a second.
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await aclient.cancel(long_job.id) == "cancelling"
        with pytest.raises(JobCancelled):
            await long_job.wait(timeout_s=5)
        assert loop.time() - started < 1.5
        fake = fakes[long_status.gpu or 0]
        assert fake.state()["running"] == []  # the prompt was interrupted, not left running


async def _state_is(job: Any, state: str) -> bool:
    return bool((await job.status()).state.value == state)


async def test_progress_is_reported_and_outputs_stored(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": fakes[0].port})):
        job = await aclient.submit(fake_work_workflow(1.5, 10, seed=3))
        seen: list[float] = []
        result = await job.wait(timeout_s=20, on_progress=lambda s: seen.append(s.progress))
        assert len(seen) >= 3 and seen == sorted(seen) and 0 < seen[-1] < 1
        status = await job.status()
        assert status.state.value == "completed" and status.host == "m1" and status.gpu == 0
        assert result.outputs[0].filename.endswith(".png")


async def test_xid_stops_claims_on_that_gpu_only(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(2)
    async with running_supervisor(make_config(settings, "m1", 2, {"comfyui": fakes[0].port})):
        with Client(settings) as sync:
            sync.send_control("m1", {"type": "fault", "gpu": 1, "spec": "xid=79"})

        async def gpu1_blocked() -> dict[str, Any] | None:
            record = await gpu_record(aclient, "m1", 1)
            return record if record and "XID 79" in (record.get("blocked") or "") else None

        record = await eventually(gpu1_blocked)
        assert record["health"] == "unhealthy" and record["status"] == "blocked"
        jobs = [await aclient.submit(fake_work_workflow(0.1, 0, seed=20 + i)) for i in range(4)]
        await asyncio.wait_for(asyncio.gather(*(j.wait() for j in jobs)), 20)
        assert {(await j.status()).gpu for j in jobs} == {0}
        healthy = await gpu_record(aclient, "m1", 0)
        assert healthy is not None and healthy["health"] == "healthy"

        # After a reset the operator clears the sticky finding and the GPU claims again.
        with Client(settings) as sync:
            sync.send_control("m1", {"type": "clear-health", "gpu": 1})

        async def gpu1_back() -> bool:
            record = await gpu_record(aclient, "m1", 1)
            return bool(record and record["health"] == "healthy" and not record["blocked"])

        await eventually(gpu1_back)


async def test_backend_down_means_no_claims_and_back_up_means_claims_resume(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": fakes[0].port})):
        restart = asyncio.create_task(fakes[0].restart(delay_s=2.0))

        async def blocked() -> bool:
            record = await gpu_record(aclient, "m1", 0)
            return bool(record and (record.get("blocked") or "").startswith("backend down"))

        await eventually(blocked)
        job = await aclient.submit(fake_work_workflow(0.1, 0, seed=5))
        status = await job.status()
        assert status.state.value == "queued" and status.claims == 0
        await restart
        await job.wait(timeout_s=15)
        assert (await job.status()).claims == 1


async def test_backend_restart_mid_job_requeues_without_charge(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": fakes[0].port})):
        job = await aclient.submit(fake_work_workflow(2.0, 4, seed=6))
        await eventually(lambda: _state_is(job, "running"))
        await fakes[0].restart(delay_s=0.5)
        await job.wait(timeout_s=30)
        status = await job.status()
        assert status.attempts == 0 and status.claims == 2
        assert status.timeline[0].outcome == "requeued"


async def test_job_timeout_interrupts_and_fails(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": fakes[0].port})):
        job = await aclient.submit(fake_work_workflow(30, 30, seed=7), timeout_s=1, max_attempts=1)
        with pytest.raises(JobFailed, match="Timeout"):
            await job.wait(timeout_s=15)
        assert fakes[0].state()["running"] == []


async def test_job_errors_are_blamed_on_the_job(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": fakes[0].port})):
        runtime = await aclient.submit(fake_work_workflow(0.1, 0, "error", seed=8), max_attempts=2)
        # Node classes and files it has pass the claim; a bad value is the backend's to refuse.
        invalid = await aclient.submit(fake_work_workflow(0.1, 0, "bogus", seed=8), max_attempts=3)
        with pytest.raises(JobFailed, match="RuntimeError"):
            await runtime.wait(timeout_s=30)
        with pytest.raises(JobFailed) as info:
            await invalid.wait(timeout_s=30)
        runtime_status, invalid_status = await runtime.status(), await invalid.status()
        assert runtime_status.attempts == 2 and runtime_status.error is not None
        assert runtime_status.error.node == "2"
        assert invalid_status.attempts == 1  # a rejected workflow is not retried
        assert "bogus" in str(info.value)


async def test_a_job_needing_a_node_class_no_machine_has_waits_and_says_why(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": fakes[0].port})):
        unknown = await aclient.submit({"1": {"class_type": "NoSuchNode", "inputs": {}}})
        runs = await aclient.submit(fake_work_workflow(0.05, 0, seed=81))
        await runs.wait(timeout_s=30)  # the GPU is up and claiming, and passed the other by
        reason = "needs node class NoSuchNode"
        # Published with the GPU's next record (the claim itself already knew).
        await eventually(lambda: _unschedulable_because(unknown, reason))
        status = await unknown.status()
        assert status.state is JobState.QUEUED and status.claims == 0


async def test_paused_service_and_drained_gpu_block_claims(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": fakes[0].port})):
        await aclient.drain("m1:0")
        await eventually(lambda: _blocked_with(aclient, "drained by operator"))
        record = await gpu_record(aclient, "m1", 0)
        assert record is not None
        assert (record["drained"], record["blocked_by"]) == (True, "drained")
        job = await aclient.submit(fake_work_workflow(0.1, 0, seed=9))
        await aclient.pause("comfyui")
        await aclient.undrain("m1:0")
        await eventually(lambda: _blocked_with(aclient, "service paused"))
        record = await gpu_record(aclient, "m1", 0)
        assert record is not None
        assert (record["drained"], record["blocked_by"]) == (False, "service_paused")
        assert (await job.status()).claims == 0
        await aclient.resume("comfyui")
        await job.wait(timeout_s=15)


async def _unschedulable_because(job: Any, reason: str) -> bool:
    return (await job.status()).unschedulable == reason


async def _blocked_with(client: AsyncClient, text: str) -> bool:
    record = await gpu_record(client, "m1", 0)
    return bool(record and text in (record.get("blocked") or ""))


async def test_a1111_jobs_run_through_their_own_backend(
    settings: Settings, aclient: AsyncClient, a1111_factory: Start
) -> None:
    fakes = await a1111_factory(1)
    async with running_supervisor(make_config(settings, "m2", 1, {"a1111": fakes[0].port})):
        ok = await aclient.submit({"prompt": "a red fox", "steps": 4, "width": 64, "height": 64},
                                  service="a1111")  # fmt: skip
        bad = await aclient.submit({"prompt": "fleetq:fail", "steps": 2}, service="a1111",
                                   max_attempts=1)  # fmt: skip
        result = await ok.wait(timeout_s=30)
        assert result.outputs and result.outputs[0].data.startswith(b"\x89PNG")
        with pytest.raises(JobFailed):
            await bad.wait(timeout_s=30)


async def test_supervisor_serves_prometheus_metrics(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    import aiohttp

    from fleetq.demo.embedded import free_port

    fakes = await comfy_factory(1)
    port = free_port()
    config = make_config(settings, "m1", 1, {"comfyui": fakes[0].port}, metrics_port=port)
    async with running_supervisor(config), aiohttp.ClientSession() as http:

        async def scrape() -> str | None:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                body = await response.text()
            return body if "fleetq_gpu_info{" in body else None

        body = await eventually(scrape)
        assert 'fleetq_host_up{host="m1"} 1.0' in body
        assert 'fleetq_gpu_busy{gpu="0",host="m1"} 0.0' in body


async def test_work_left_on_a_backend_by_a_dead_supervisor_is_cleared_at_start(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    import aiohttp

    fakes = await comfy_factory(1)
    orphan = {"prompt": fake_work_workflow(1.0, 0, "hang", seed=77), "client_id": "dead"}
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # one hangs forever, one waits behind it
            async with http.post(f"{fakes[0].url}/prompt", json=orphan) as response:
                assert response.status == 200
            orphan["prompt"] = fake_work_workflow(1.0, 0, "hang", seed=78)
    assert fakes[0].state()["pending"]
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": fakes[0].port})):
        job = await aclient.submit(fake_work_workflow(0.1, 0, seed=79))
        await job.wait(timeout_s=15)


async def test_a_critical_xid_during_a_job_requeues_it_without_charge(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(2)
    async with running_supervisor(make_config(settings, "m1", 2, {"comfyui": fakes[0].port})):
        job = await aclient.submit(fake_work_workflow(30, 30, seed=80))
        await eventually(lambda: _state_is(job, "running"))
        gpu = (await job.status()).gpu
        with Client(settings) as sync:
            sync.send_control("m1", {"type": "fault", "gpu": gpu, "spec": "xid=79"})

        async def moved() -> Any:
            status = await job.status()
            return status if status.claims == 2 and status.state.value == "running" else None

        status = await eventually(moved)
        assert status.gpu != gpu and status.attempts == 0  # the other GPU took it, uncharged
        assert status.timeline[0].outcome == "requeued"
        assert "XID 79" in (status.timeline[0].detail or "")
        await aclient.cancel(job.id)
