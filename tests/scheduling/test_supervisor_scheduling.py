"""Scheduling through real supervisors and fake backends: capabilities read from the backend,
operator labels and GPU memory, a refresh that makes a waiting job runnable, and warm-model
affinity that saves model loads, with the warm model and load count published per GPU."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fleetq import AsyncClient, JobState, Settings
from fleetq.demo.processes import consecutive_free_ports
from fleetq.records import GpuRecord
from supervisor.sim.comfyui import ComfyUIOptions, serve_comfyui
from supervisor.sim.comfyui.workflows import fake_work_workflow
from supervisor.sim.group import FakeGroup
from tests.helpers import eventually
from tests.supervisor.conftest import make_config, running_supervisor

ROOT = Path(__file__).resolve().parents[2]
Start = Callable[..., Awaitable[FakeGroup[Any]]]


@pytest.fixture
async def fakes() -> AsyncIterator[Start]:
    groups: list[FakeGroup[Any]] = []

    async def start(count: int = 1, **options: Any) -> FakeGroup[Any]:
        group = await serve_comfyui(
            "127.0.0.1", consecutive_free_ports(count), count, ComfyUIOptions(**options)
        )
        groups.append(group)
        return group

    yield start
    for group in groups:
        await group.aclose()


def sdxl(checkpoint: str, seed: int) -> dict[str, Any]:
    """The example text-to-image graph on ``checkpoint``, tiny and fast."""
    graph: dict[str, Any] = json.loads(
        (ROOT / "examples" / "comfyui_sdxl_txt2img.json").read_text()
    )
    graph["4"]["inputs"]["ckpt_name"] = checkpoint
    graph["3"]["inputs"].update(seed=seed, steps=1)
    graph["5"]["inputs"].update(width=64, height=64)
    return graph


async def gpu_record(client: AsyncClient, host: str, index: int) -> GpuRecord | None:
    for view in (await client.fleet()).hosts:
        if view.host == host and view.online:
            for gpu in view.gpus:
                if gpu.index == index:
                    return gpu
    return None


def ran_on(status: Any) -> tuple[str, int | None]:
    return status.timeline[-1].host, status.timeline[-1].gpu


async def test_labels_and_gpu_memory_steer_jobs_to_the_gpus_that_meet_them(
    settings: Settings, aclient: AsyncClient, fakes: Start
) -> None:
    plain, labelled = await fakes(2), await fakes(2)
    # Simulated GPUs: 0 is an H100 (85.5 GB), 1 an RTX 4090 (25.8 GB).
    tagged = make_config(settings, "tagged", 2, {"comfyui": labelled[0].port},
                         labels={"gpu": "h100"})  # fmt: skip
    async with (
        running_supervisor(make_config(settings, "plain", 2, {"comfyui": plain[0].port})),
        running_supervisor(tagged),
    ):
        wants_label = [
            await aclient.submit(
                fake_work_workflow(0.05, seed=i), requires={"labels": {"gpu": "h100"}}
            )
            for i in range(4)
        ]
        wants_memory = [
            await aclient.submit(
                fake_work_workflow(0.05, seed=10 + i), requires={"min_vram_gb": 48}
            )
            for i in range(4)
        ]
        for job in wants_label + wants_memory:
            await job.wait(timeout_s=30)
        assert {ran_on(await j.status())[0] for j in wants_label} == {"tagged"}
        assert {ran_on(await j.status())[1] for j in wants_memory} == {0}
        record = await gpu_record(aclient, "tagged", 1)
        assert record is not None
        assert record.labels == {"gpu": "h100"} and record.vram_gb == 25.8


async def test_a_refresh_after_a_model_arrives_runs_the_waiting_job(
    settings: Settings, aclient: AsyncClient, fakes: Start
) -> None:
    group = await fakes(1, checkpoints=("a.safetensors",), sampler_step_s=0.001)
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": group[0].port})):
        job = await aclient.submit(sdxl("b.safetensors", seed=1))

        async def explained() -> bool:
            return (await job.status()).unschedulable == "needs checkpoint b.safetensors"

        await eventually(explained)
        group[0].configure(checkpoints=("a.safetensors", "b.safetensors"))  # copied in
        await aclient.send_control("m1", {"type": "refresh-capabilities"})
        await job.wait(timeout_s=30)
        status = await job.status()
        assert status.state is JobState.COMPLETED and status.attempts == 0


async def test_warm_model_affinity_saves_loads_and_is_published(
    settings: Settings, aclient: AsyncClient, fakes: Start
) -> None:
    group = await fakes(
        1, checkpoints=("a.safetensors", "b.safetensors"), model_load_s=0.05, sampler_step_s=0.001
    )
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": group[0].port})):
        await aclient.pause("comfyui")
        jobs = [
            await aclient.submit(sdxl(model, seed=i))
            for i, model in enumerate(["a.safetensors", "b.safetensors"] * 3)
        ]
        await aclient.resume("comfyui")
        for job in jobs:
            await job.wait(timeout_s=30)
        # FIFO would load a, b, a, b, a, b; the warm model keeps a's, then b's jobs together
        # (a b job passed over takes the place of the a job that passed it: b's may start in
        # another order among themselves).
        started = [(await job.status()).started_ms or 0 for job in jobs]
        order = sorted(range(len(jobs)), key=lambda i: started[i])
        assert order[:3] == [0, 2, 4] and sorted(order[3:]) == [1, 3, 5]
        assert group[0].model_loads == 2

        async def published() -> bool:
            record = await gpu_record(aclient, "m1", 0)
            return record is not None and (record.model_loads, record.warm_model) == (
                2,
                "b.safetensors",
            )

        await eventually(published)


async def test_a_backend_restart_mid_job_forgets_the_warm_model(
    settings: Settings, aclient: AsyncClient, fakes: Start
) -> None:
    """ComfyUI does not say what it holds, so the warm model is the last job's. A restart in
    the middle of a job on that model empties the backend: the supervisor forgets the warm
    model, and the run again of the job counts the load the backend really does."""
    group = await fakes(1, checkpoints=("a.safetensors",), model_load_s=0.05,
                        sampler_step_s=0.25)  # fmt: skip
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": group[0].port})):
        first = await aclient.submit(sdxl("a.safetensors", seed=1))
        await first.wait(timeout_s=30)
        long = sdxl("a.safetensors", seed=2)
        long["3"]["inputs"]["steps"] = 12  # 3 s of sampling: time to restart under it
        job = await aclient.submit(long)

        async def running() -> bool:
            return (await job.status()).state is JobState.RUNNING

        await eventually(running)
        await group[0].restart(delay_s=0.3)
        await job.wait(timeout_s=30)
        status = await job.status()
        assert status.claims == 2 and status.timeline[0].outcome == "requeued"
        assert group[0].model_loads == 2  # once at first, once after the restart

        async def published() -> bool:
            record = await gpu_record(aclient, "m1", 0)
            return record is not None and record.model_loads == 2

        await eventually(published)
