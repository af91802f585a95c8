"""Claims that respect requirements, against a real Redis: one queue per requirement class, a GPU
claims only from the classes it meets (priority then FIFO among them), wake-ups reach the GPUs
able to run the job, and every command that reads or moves queued jobs sees every class."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from fleetq import AsyncClient, JobState, Settings
from fleetq.classes import ClassTable, ServiceScope, scope_for
from fleetq.model import FaultKind, JobError
from fleetq.requirements import Capabilities, derive
from fleetq.worker import WorkerQueue
from tests.helpers import eventually

SERVICE = "comfyui"
LONG_S = 60.0
DEADLINE_S = 15.0


def graph(checkpoint: str, seed: int = 0) -> dict[str, Any]:
    """A text-to-image graph naming one checkpoint (its requirement class)."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": seed}},
    }


def caps(*checkpoints: str, **labels: str) -> Capabilities:
    return Capabilities.make(
        nodes={"CheckpointLoaderSimple", "KSampler"},
        models={"checkpoints": checkpoints},
        labels=labels,
        vram_gb=24,
    )


class Gpu:
    """The claiming side of one GPU: its capabilities and warm model, as a puller keeps them."""

    def __init__(self, capabilities: Capabilities | None, warm: Sequence[str] = ()) -> None:
        self.capabilities = capabilities
        self.warm = frozenset(warm)

    def scopes(self, services: Sequence[str], classes: ClassTable) -> Mapping[str, ServiceScope]:
        return {s: scope_for(classes.get(s), self.capabilities, self.warm) for s in services}


def machine(settings: Settings, queues: list[WorkerQueue], **overrides: Any) -> WorkerQueue:
    queue = WorkerQueue(settings.with_overrides(**overrides) if overrides else settings)
    queues.append(queue)
    return queue


async def claim_now(queue: WorkerQueue, gpu: Gpu, index: int = 0) -> str | None:
    """One claim round without waiting (reloading the classes if they moved)."""
    outcome = await queue.claim([SERVICE], "h", index, 0.0, scopes=gpu.scopes)
    return None if outcome.job is None else outcome.job.id


async def test_submit_files_each_job_under_its_requirement_class(
    aclient: AsyncClient, raw: aioredis.Redis, settings: Settings
) -> None:
    keys = aclient.store.keys
    a = await aclient.submit(graph("a.safetensors"))
    b = await aclient.submit(graph("b.safetensors"))
    same = await aclient.submit(graph("a.safetensors", seed=2))
    plain = await aclient.submit({"prompt": "a cat"}, service="a1111")  # needs nothing
    class_a = derive(SERVICE, graph("a.safetensors")).class_id
    status = await a.status()
    assert status.class_id == class_a and (await same.status()).class_id == class_a
    assert status.requirements["models"] == {"checkpoints": ["a.safetensors"]}
    assert await raw.zrange(keys.class_queue(SERVICE, class_a), 0, -1) == [a.id, same.id]
    assert await raw.zrange(keys.queue(SERVICE), 0, -1) == []
    assert await raw.zrange(keys.queue("a1111"), 0, -1) == [plain.id]
    assert (await plain.status()).class_id == "" and await raw.exists(keys.classes("a1111")) == 0
    assert set(await raw.hkeys(keys.classes(SERVICE))) == {class_a, (await b.status()).class_id}
    assert await raw.get(keys.class_version(SERVICE)) == "2"  # one move per new class
    # Position counts the jobs ahead in every class of the service.
    assert [(await j.status()).position for j in (a, b, same)] == [0, 1, 2]


async def test_a_gpu_claims_only_classes_it_meets_by_priority_then_fifo(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    queue = machine(settings, queues, affinity=False)
    needs_c = await aclient.submit(graph("c.safetensors"), priority=50)
    first_a = await aclient.submit(graph("a.safetensors"))
    b = await aclient.submit(graph("b.safetensors"))
    urgent_b = await aclient.submit(graph("b.safetensors", seed=1), priority=10)
    second_a = await aclient.submit(graph("a.safetensors", seed=1))
    gpu = Gpu(caps("a.safetensors", "b.safetensors"))
    order = [await claim_now(queue, gpu) for _ in range(5)]
    assert order == [urgent_b.id, first_a.id, b.id, second_a.id, None]
    assert (await needs_c.status()).state is JobState.QUEUED  # nobody here has c
    assert await claim_now(queue, Gpu(caps("c.safetensors"))) == needs_c.id


async def test_labels_and_gpu_memory_are_requirements_too(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    queue = machine(settings, queues)
    big = await aclient.submit(graph("a.safetensors"), requires={"min_vram_gb": 48})
    h100 = await aclient.submit(graph("a.safetensors"), requires={"labels": {"gpu": "h100"}})
    small = Gpu(caps("a.safetensors", gpu="l4"))
    assert await claim_now(queue, small) is None
    assert await claim_now(queue, Gpu(caps("a.safetensors", gpu="h100"))) == h100.id
    roomy = Capabilities.make(
        nodes={"CheckpointLoaderSimple", "KSampler"}, models={"checkpoints": ["a.safetensors"]},
        vram_gb=80,
    )  # fmt: skip
    assert await claim_now(queue, Gpu(roomy)) == big.id


async def test_a_class_created_after_the_gpu_read_the_classes_is_claimed_in_one_round(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    queue = machine(settings, queues)
    gpu = Gpu(caps("a.safetensors", "b.safetensors"))
    await aclient.submit(graph("a.safetensors"))
    assert await claim_now(queue, gpu) is not None  # the table now holds class a
    version = queue.classes.version(SERVICE)
    job = await aclient.submit(graph("b.safetensors"))  # a class the table does not know
    assert await claim_now(queue, gpu) == job.id
    assert queue.classes.version(SERVICE) != version


async def test_a_submit_wakes_a_gpu_that_can_run_it_and_no_other(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    lacking, capable = machine(settings, queues), machine(settings, queues)
    # The class exists before either waits, so the submit below wakes its class only.
    await (await aclient.submit(graph("b.safetensors"))).cancel()
    await lacking.refresh_classes([SERVICE])
    await capable.refresh_classes([SERVICE])
    await raw.delete(lacking.keys.marker(SERVICE))  # the new class's wake-up, used up
    stop = asyncio.Event()
    without_b, with_b = Gpu(caps("a.safetensors")), Gpu(caps("b.safetensors"))
    idle = asyncio.create_task(
        lacking.claim([SERVICE], "h1", 0, LONG_S, stop=stop, scopes=without_b.scopes)
    )
    waits = asyncio.create_task(
        capable.claim([SERVICE], "h2", 0, LONG_S, stop=stop, scopes=with_b.scopes)
    )
    await eventually(lambda: lacking.wakeups.idle_claimers == capable.wakeups.idle_claimers == 1)
    job = await aclient.submit(graph("b.safetensors", seed=3))
    outcome = await asyncio.wait_for(waits, DEADLINE_S)
    assert outcome.job is not None and outcome.job.id == job.id
    assert lacking.wakeups.popped == 0  # never woken for a job it cannot run
    stop.set()
    assert (await asyncio.wait_for(idle, DEADLINE_S)).job is None


async def test_a_capability_change_while_jobs_wait_lets_the_gpu_claim_them(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    queue = machine(settings, queues)
    gpu = Gpu(caps("a.safetensors"))
    job = await aclient.submit(graph("flux1-dev.safetensors"))
    waiting = asyncio.create_task(queue.claim([SERVICE], "h", 0, LONG_S, scopes=gpu.scopes))
    await eventually(lambda: queue.wakeups.idle_claimers == 1)
    assert (await job.status()).state is JobState.QUEUED
    gpu.capabilities = caps("a.safetensors", "flux1-dev.safetensors")  # the model was copied in
    queue.wakeups.rescope()
    outcome = await asyncio.wait_for(waiting, DEADLINE_S)
    assert outcome.job is not None and outcome.job.id == job.id


async def test_a_gpu_that_loses_a_model_stops_claiming_its_jobs(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    queue = machine(settings, queues)
    gpu = Gpu(caps("a.safetensors", "b.safetensors"))
    first = await aclient.submit(graph("b.safetensors"))
    assert await claim_now(queue, gpu) == first.id
    gpu.capabilities = caps("a.safetensors")  # b.safetensors was deleted
    second = await aclient.submit(graph("b.safetensors", seed=1))
    assert await claim_now(queue, gpu) is None
    assert (await second.status()).state is JobState.QUEUED
    assert await claim_now(queue, Gpu(caps("b.safetensors")), 1) == second.id


async def test_bump_and_cancel_move_jobs_within_their_class_queues(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    queue = machine(settings, queues, affinity=False)
    a1 = await aclient.submit(graph("a.safetensors"))
    b1 = await aclient.submit(graph("b.safetensors"))
    a2 = await aclient.submit(graph("a.safetensors", seed=1))
    b2 = await aclient.submit(graph("b.safetensors", seed=1))
    assert await aclient.bump(b2.id, 5) == 0  # ahead of every class now
    bumped = await aclient.bump_by(a2.id, 3)
    assert (bumped.priority, bumped.position) == (3, 1)
    assert await aclient.cancel(b1.id) == "cancelled"
    listed = await aclient.jobs("queued")
    assert [(j.id, j.position) for j in listed] == [(b2.id, 0), (a2.id, 1), (a1.id, 2)]
    assert (await aclient.stats()).services[0].queued == 3
    gpu = Gpu(caps("a.safetensors", "b.safetensors"))
    assert [await claim_now(queue, gpu) for _ in range(4)] == [b2.id, a2.id, a1.id, None]
    class_b = (await b1.status()).class_id
    assert await raw.zcard(queue.keys.class_queue(SERVICE, class_b)) == 0


async def test_retries_and_requeues_go_back_to_their_class_queue(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    queue = machine(settings.with_overrides(backoff_base_ms=0, backoff_max_ms=0), queues)
    gpu = Gpu(caps("b.safetensors"))
    job = await aclient.submit(graph("b.safetensors"))
    outcome = await queue.claim([SERVICE], "h", 0, 0.0, scopes=gpu.scopes)
    assert outcome.job is not None
    assert await queue.fail(outcome.job, FaultKind.JOB, JobError("E", "boom")) == "retrying"
    # A GPU that cannot run it promotes the due retry into its class queue, and leaves it.
    assert await claim_now(queue, Gpu(caps("a.safetensors")), 1) is None
    class_b = (await job.status()).class_id
    assert await raw.zrange(queue.keys.class_queue(SERVICE, class_b), 0, -1) == [job.id]
    again = await queue.claim([SERVICE], "h", 0, 0.0, scopes=gpu.scopes)
    assert again.job is not None and again.job.id == job.id
    assert await queue.fail(again.job, FaultKind.INFRA, JobError("E", "gpu")) == "requeued"
    assert await raw.zrange(queue.keys.class_queue(SERVICE, class_b), 0, -1) == [job.id]
    assert (await job.status()).position == 0


async def test_pause_and_resume_reach_the_claimers_of_every_class(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    queue = machine(settings, queues)
    gpu = Gpu(caps("b.safetensors"))
    await (await aclient.submit(graph("b.safetensors"))).cancel()
    await queue.refresh_classes([SERVICE])
    await aclient.pause(SERVICE)
    job = await aclient.submit(graph("b.safetensors", seed=1))
    waiting = asyncio.create_task(queue.claim([SERVICE], "h", 0, LONG_S, scopes=gpu.scopes))
    await eventually(lambda: queue.wakeups.idle_claimers == 1)
    assert (await job.status()).state is JobState.QUEUED
    await aclient.resume(SERVICE)  # wakes the claimers of the class that has work
    outcome = await asyncio.wait_for(waiting, DEADLINE_S)
    assert outcome.job is not None and outcome.job.id == job.id


async def test_concurrent_gpus_of_different_capabilities_lose_and_share_no_job(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    models = ["a.safetensors", "b.safetensors", "c.safetensors", "d.safetensors"]
    jobs = {}
    for i in range(60):
        job = await aclient.submit(graph(models[i % 4], seed=i), priority=i % 3)
        jobs[job.id] = models[i % 4]
    pairs = [("a.safetensors", "b.safetensors"), ("b.safetensors", "c.safetensors"),
             ("c.safetensors", "a.safetensors")]  # fmt: skip
    gpus = [Gpu(caps(*pairs[i % 3])) for i in range(6)]  # nobody has d
    machines = [machine(settings, queues) for _ in range(3)]
    claimed: list[tuple[str, int]] = []

    async def run(index: int) -> None:
        queue, gpu = machines[index % 3], gpus[index]
        while True:
            outcome = await queue.claim([SERVICE], f"h{index % 3}", index, 0.0, scopes=gpu.scopes)
            if outcome.job is None:
                return
            job = outcome.job
            assert gpu.capabilities is not None
            assert jobs[job.id] in gpu.capabilities.models["checkpoints"]
            claimed.append((job.id, index))
            await queue.complete(job, [])

    await asyncio.gather(*(run(i) for i in range(6)))
    ids = [job_id for job_id, _ in claimed]
    assert len(ids) == len(set(ids))  # none twice
    assert set(ids) == {j for j, m in jobs.items() if m != "d.safetensors"}  # none lost
    left = await aclient.jobs("queued", limit=100)
    assert {j.id for j in left} == {j for j, m in jobs.items() if m == "d.safetensors"}
    keys = aclient.store.keys
    assert await raw.zcard(keys.leases) == 0 and await raw.zcard(keys.running(SERVICE)) == 0


# -- warm-model affinity -------------------------------------------------------------------------


async def backdate(raw: aioredis.Redis, queue: WorkerQueue, job_id: str, seconds: float) -> None:
    """Make a queued job look ``seconds`` older to the claim (its enqueue time moves back),
    instead of sleeping through the wait bound."""
    key = queue.keys.waiting(SERVICE)
    score = await raw.zscore(key, job_id)
    assert score is not None
    await raw.zadd(key, {job_id: score - seconds * 1000}, xx=True)


async def test_affinity_prefers_a_job_using_the_warm_model_within_one_priority(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    warm_gpu = Gpu(caps("a.safetensors", "b.safetensors"), warm=["b.safetensors"])
    cold = await aclient.submit(graph("a.safetensors"))
    warm = await aclient.submit(graph("b.safetensors"))
    on = machine(settings, queues)
    outcome = await on.claim([SERVICE], "h", 0, 0.0, scopes=warm_gpu.scopes)
    assert outcome.job is not None and outcome.job.id == warm.id and outcome.for_affinity
    await aclient.submit(graph("b.safetensors", seed=1))  # warm again, behind the cold one
    off = machine(settings, queues, affinity=False)
    assert await claim_now(off, warm_gpu, 1) == cold.id  # affinity off: plain FIFO


async def test_affinity_never_passes_over_a_higher_priority_beyond_its_window(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    warm_gpu = Gpu(caps("a.safetensors", "b.safetensors"), warm=["b.safetensors"])
    urgent = await aclient.submit(graph("a.safetensors"), priority=1)
    warm = await aclient.submit(graph("b.safetensors"))
    same_band = machine(settings, queues)  # window 0 (the default)
    assert await claim_now(same_band, warm_gpu) == urgent.id
    again = await aclient.submit(graph("a.safetensors", seed=1), priority=1)
    one_band = machine(settings, queues, affinity_priority_window=1)
    assert await claim_now(one_band, warm_gpu, 1) == warm.id
    assert (await again.status()).state is JobState.QUEUED


async def test_affinity_never_starves_a_job_past_the_wait_bound(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    queue = machine(settings, queues, affinity_max_wait_s=30.0)
    warm_gpu = Gpu(caps("a.safetensors", "b.safetensors"), warm=["b.safetensors"])
    cold = await aclient.submit(graph("a.safetensors"))
    for i in range(3):
        await aclient.submit(graph("b.safetensors", seed=i))
    first = await claim_now(queue, warm_gpu)
    assert first is not None and first != cold.id  # warm work first while the cold job is new
    await backdate(raw, queue, cold.id, 30.0)
    assert await claim_now(queue, warm_gpu) == cold.id  # warm jobs still wait; the bound holds


# -- unschedulable jobs ----------------------------------------------------------------------------


async def publish_gpus(queue: WorkerQueue, host: str, *gpus: Capabilities) -> None:
    """Publish a host's GPU records as a supervisor does: capabilities by digest."""
    from fleetq.records import GpuRecord, HostRecord
    from fleetq.schedulable import capabilities_document

    records, documents = [], {}
    for index, capabilities in enumerate(gpus):
        digest, body = capabilities_document(capabilities)
        documents[digest] = body
        records.append(GpuRecord(index, services=(SERVICE,), capabilities={SERVICE: digest}))
    await queue.publish_host(host, HostRecord(host=host), records)
    await queue.publish_capabilities(documents, ttl_ms=5_000)


async def test_status_says_why_no_live_gpu_can_run_a_job(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    queue = machine(settings, queues)
    job = await aclient.submit(graph("flux1-dev.safetensors"), requires={"labels": {"gpu": "h100"}})
    assert (await job.status()).unschedulable == "no live machine runs service comfyui"
    far = caps("a.safetensors", gpu="l4")  # lacks the checkpoint and the label
    near = caps("a.safetensors", gpu="h100")  # lacks the checkpoint only
    await publish_gpus(queue, "m1", far, near)
    status = await job.status()
    assert status.unschedulable == "needs checkpoint flux1-dev.safetensors"
    await publish_gpus(queue, "m2", caps("flux1-dev.safetensors", gpu="h100"))
    assert (await job.status()).unschedulable is None


async def test_require_schedulable_refuses_and_writes_nothing(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    from fleetq.errors import Unschedulable

    queue = machine(settings, queues)
    await publish_gpus(queue, "m1", caps("a.safetensors"))
    before = sorted(await raw.keys(aclient.store.keys.prefix.replace("{", "\\{") + "*"))
    with pytest.raises(Unschedulable, match=r"needs checkpoint flux1-dev\.safetensors"):
        await aclient.submit(graph("flux1-dev.safetensors"), require_schedulable=True)
    assert sorted(await raw.keys(aclient.store.keys.prefix.replace("{", "\\{") + "*")) == before
    job = await aclient.submit(graph("a.safetensors"), require_schedulable=True)
    assert (await job.status()).state is JobState.QUEUED


async def test_an_expired_lease_requeues_the_job_into_its_class_queue(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    queue = machine(settings, queues)
    gpu = Gpu(caps("b.safetensors"))
    job = await aclient.submit(graph("b.safetensors"))
    assert await claim_now(queue, gpu) == job.id
    # The puller died: its lease runs out (moved into the past instead of waited for).
    await raw.zadd(queue.keys.leases, {job.id: 1}, xx=True)
    outcome = await queue.reap("test-reaper")
    assert outcome.requeued == 1
    class_b = (await job.status()).class_id
    assert await raw.zrange(queue.keys.class_queue(SERVICE, class_b), 0, -1) == [job.id]
    assert await claim_now(queue, Gpu(caps("a.safetensors")), 1) is None
    assert await claim_now(queue, gpu) == job.id
