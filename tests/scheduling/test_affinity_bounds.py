"""Warm-model affinity against fair share and the wait bound, on a real redis-server: affinity
reorders one tenant's jobs, never another tenant's turn; the job it passes over gives its turn
to the warm one (so the band's virtual time moves on); and the bound counts how much later a
job arrived than the one it passes over, so a flood whose jobs have all waited long keeps its
affinity."""

from __future__ import annotations

import redis.asyncio as aioredis

from fleetq import AsyncClient, Settings
from fleetq.worker import WorkerQueue
from tests.scheduling.test_class_claims import Gpu, backdate, caps, claim_now, graph, machine

WARM_B = Gpu(caps("a.safetensors", "b.safetensors"), warm=["b.safetensors"])
ONLY_A = Gpu(caps("a.safetensors"))


async def test_affinity_never_passes_over_another_tenants_turn(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    flood = [await aclient.submit(graph("b.safetensors", seed=i), tenant="studio")
             for i in range(3)]  # fmt: skip
    queue = machine(settings, queues)
    assert await claim_now(queue, WARM_B) == flood[0].id
    small = await aclient.submit(graph("a.safetensors"), tenant="webapp")
    assert (await small.status()).position == 0  # its turn comes before the flood's next
    assert await claim_now(queue, WARM_B, 1) == small.id  # the warm model waits for it
    assert await claim_now(queue, WARM_B, 2) == flood[1].id


async def test_affinity_reorders_one_tenants_jobs(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    cold = await aclient.submit(graph("a.safetensors"), tenant="studio")
    warm = await aclient.submit(graph("b.safetensors"), tenant="studio")
    queue = machine(settings, queues)
    outcome = await queue.claim(["comfyui"], "h", 0, 0.0, scopes=WARM_B.scopes)
    assert outcome.job is not None and outcome.job.id == warm.id and outcome.for_affinity
    assert (await cold.status()).position == 0


async def test_the_passed_over_job_gives_its_turn_to_the_warm_one(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    """Tenant studio's cold job is passed over for its warm one; tenant webapp's job arriving
    next is the band's next turn, ahead of the cold job (which queued on from the warm one's
    place), as it would be had the cold job run. Without the trade the band's virtual time
    would jump to the warm job's tag and webapp would queue behind the cold job."""
    cold = await aclient.submit(graph("a.safetensors"), tenant="studio")
    await aclient.submit(graph("b.safetensors"), tenant="studio")
    queue = machine(settings, queues)
    assert (await claim_now(queue, WARM_B)) != cold.id
    newcomer = await aclient.submit(graph("a.safetensors", seed=1), tenant="webapp")
    assert [(await j.status()).position for j in (newcomer, cold)] == [0, 1]
    assert await claim_now(queue, ONLY_A, 1) == newcomer.id
    assert await claim_now(queue, ONLY_A, 1) == cold.id


async def test_a_flood_that_waited_long_keeps_its_affinity(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    queue = machine(settings, queues, affinity_max_wait_s=30.0)
    cold = await aclient.submit(graph("a.safetensors"), tenant="studio")
    warm = [await aclient.submit(graph("b.safetensors", seed=i), tenant="studio")
            for i in range(2)]  # fmt: skip
    for job in (cold, *warm):  # all queued two minutes ago, together
        await backdate(raw, queue, job.id, 120.0)
    assert await claim_now(queue, WARM_B) == warm[0].id


async def test_a_job_arriving_past_the_bound_never_passes_over_an_older_one(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    queue = machine(settings, queues, affinity_max_wait_s=30.0)
    cold = await aclient.submit(graph("a.safetensors"), tenant="studio")
    early = await aclient.submit(graph("b.safetensors"), tenant="studio")
    await backdate(raw, queue, cold.id, 31.0)
    await backdate(raw, queue, early.id, 2.0)  # arrived 29 s after the cold one: may pass
    assert await claim_now(queue, WARM_B) == early.id
    await aclient.submit(graph("b.safetensors", seed=1), tenant="studio")  # 31 s later
    assert await claim_now(queue, WARM_B) == cold.id
