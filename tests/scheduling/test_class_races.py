"""Races in requirement-class scheduling, against a real redis-server: capabilities that change
while jobs wait and GPUs claim, a GPU whose warm model goes, and bumps and cancels of jobs in
class queues while GPUs claim. Nothing is lost, nothing is claimed twice or by a GPU that
could not run it at the time, and nothing is left behind in any key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from fleetq import AsyncClient, JobState, Settings
from fleetq.classes import ClassTable, ServiceScope
from fleetq.errors import InvalidTransition
from fleetq.keys import Keys
from fleetq.requirements import Capabilities, derive
from fleetq.worker import WorkerQueue
from supervisor.backends.a1111 import A1111Backend
from supervisor.profile import GpuProfile
from tests.helpers import eventually
from tests.scheduling.test_capabilities import A1111Factory
from tests.scheduling.test_class_claims import SERVICE, Gpu, caps, claim_now, graph, machine

LONG_S = 60.0
DEADLINE_S = 15.0


async def holders(raw: aioredis.Redis, keys: Keys, job_id: str) -> list[str]:
    """Every sorted set of the namespace that holds ``job_id`` (class queues, waiting, delayed,
    running, leases, ended...), by key name without the prefix."""
    found = []
    async for key in raw.scan_iter(match=keys.prefix.replace("{", "\\{") + "*", count=1000):
        if await raw.type(key) == "zset" and await raw.zscore(key, job_id) is not None:
            found.append(key[len(keys.prefix) :])
    return sorted(found)


async def counters(raw: aioredis.Redis, keys: Keys) -> dict[str, int]:
    """The live-job counters of the service: per-tenant counts and fair-share band counts."""
    tenants = await raw.hgetall(keys.tenant_counts(SERVICE))
    fair = await raw.hgetall(keys.fair(SERVICE))
    out = {k: int(v) for k, v in tenants.items()}
    out.update({k: int(v) for k, v in fair.items() if k.startswith("N:") and int(v)})
    return out


# -- a capability change while jobs wait ---------------------------------------------------------


class Recording(Gpu):
    """A GPU that remembers the capabilities its last claim scope was computed from."""

    used: Capabilities | None = None

    def scopes(self, services: Sequence[str], classes: ClassTable) -> Mapping[str, ServiceScope]:
        self.used = self.capabilities
        return super().scopes(services, classes)


async def test_capabilities_that_change_mid_run_lose_and_share_no_job(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    """Two GPUs claim concurrently from classes a and b; after ten claims the first loses b
    and the second gains it. Every job is claimed once, each by a GPU that could run it when
    it claimed, and the b jobs left when the first GPU lost b are claimed by the second."""
    jobs: dict[str, str] = {}
    for i in range(30):
        for model in ("a.safetensors", "b.safetensors"):
            jobs[(await aclient.submit(graph(model, seed=i), priority=i % 3)).id] = model
    gpus = [Recording(caps("a.safetensors", "b.safetensors")), Recording(caps("a.safetensors"))]
    machines = [machine(settings, queues), machine(settings, queues)]
    claimed: list[tuple[str, int]] = []

    async def run(index: int) -> None:
        queue, gpu = machines[index], gpus[index]
        while True:
            outcome = await queue.claim([SERVICE], f"h{index}", 0, 0.0, scopes=gpu.scopes)
            if outcome.job is None:
                return
            assert gpu.used is not None  # it could run the job when it claimed it
            assert jobs[outcome.job.id] in gpu.used.models["checkpoints"]
            claimed.append((outcome.job.id, index))
            if len(claimed) == 10:
                gpus[0].capabilities = caps("a.safetensors")  # b.safetensors was deleted
                gpus[1].capabilities = caps("a.safetensors", "b.safetensors")  # copied here
            await queue.complete(outcome.job, [])
            await asyncio.sleep(0)  # let the other GPU claim in between

    await asyncio.gather(run(0), run(1))
    ids = [job_id for job_id, _ in claimed]
    assert len(ids) == len(set(ids)) == len(jobs)  # none twice, none lost
    b_claims = {gpu for job_id, gpu in claimed if jobs[job_id] == "b.safetensors"}
    assert b_claims == {0, 1}  # the first GPU before the change, the second after it
    stats = (await aclient.stats()).services[0]
    assert (stats.queued, stats.running, stats.completed) == (0, 0, len(jobs))


async def test_an_idle_gpu_that_lost_a_model_leaves_new_jobs_of_it_queued(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    queue = machine(settings, queues)
    await (await aclient.submit(graph("b.safetensors"))).cancel()  # class b exists
    gpu = Gpu(caps("a.safetensors", "b.safetensors"))
    waiting = asyncio.create_task(queue.claim([SERVICE], "h", 0, LONG_S, scopes=gpu.scopes))
    await eventually(lambda: queue.wakeups.idle_claimers == 1)
    gpu.capabilities = caps("a.safetensors")  # b.safetensors was deleted while it waited
    queue.wakeups.rescope()
    stranded = await aclient.submit(graph("b.safetensors", seed=1))
    later = await aclient.submit(graph("a.safetensors", seed=1))
    outcome = await asyncio.wait_for(waiting, DEADLINE_S)
    # b came first and would win were it still served: the GPU took the a job after it.
    assert outcome.job is not None and outcome.job.id == later.id
    status = await stranded.status()
    assert (status.state, status.position) == (JobState.QUEUED, 0)
    assert await claim_now(machine(settings, queues), Gpu(caps("b.safetensors")), 1) == (
        stranded.id
    )


# -- a GPU losing its warm model -----------------------------------------------------------------


async def test_a_gpu_whose_warm_model_went_no_longer_prefers_its_jobs(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue]
) -> None:
    queue = machine(settings, queues)
    gpu = Gpu(caps("a.safetensors", "b.safetensors"), warm=["b.safetensors"])
    cold = await aclient.submit(graph("a.safetensors"))
    await aclient.submit(graph("b.safetensors"))
    outcome = await queue.claim([SERVICE], "h", 0, 0.0, scopes=gpu.scopes)
    assert outcome.job is not None and outcome.for_affinity  # b passed over the older a
    warm_again = await aclient.submit(graph("b.safetensors", seed=1))
    gpu.warm = frozenset()  # the backend restarted: nothing is loaded
    outcome = await queue.claim([SERVICE], "h", 0, 0.0, scopes=gpu.scopes)
    assert outcome.job is not None and outcome.job.id == cold.id and not outcome.for_affinity
    assert (await warm_again.status()).position == 0


async def test_a1111_switching_model_moves_the_warm_model_affinity_and_load_count(
    aclient: AsyncClient,
    settings: Settings,
    queues: list[WorkerQueue],
    a1111_factory: A1111Factory,
) -> None:
    """A1111 says which checkpoint it holds. When someone loads another one, the GPU's next
    read of its capabilities moves the warm model: affinity follows it, the record published
    says so, and the next job on the old model counts as a load."""
    titles = ("a.safetensors [aaaaaaaaaa]", "b.safetensors [bbbbbbbbbb]",
              "c.safetensors [cccccccccc]")  # fmt: skip
    server = await a1111_factory(models=titles)
    backend = A1111Backend(server.url)
    profile = GpuProfile("m:0", {"a1111": backend})
    queue = machine(settings, queues)

    async def load(title: str) -> None:
        async with aiohttp.ClientSession() as http:
            body = {"sd_model_checkpoint": title}
            async with http.post(f"{server.url}/sdapi/v1/options", json=body) as answer:
                assert answer.status == 200

    def txt2img(checkpoint: str, seed: int) -> dict[str, Any]:
        return {"prompt": "a cat", "seed": seed,
                "override_settings": {"sd_model_checkpoint": checkpoint}}  # fmt: skip

    async def claim() -> tuple[str | None, bool]:
        outcome = await queue.claim(["a1111"], "m", 0, 0.0, scopes=profile.scopes)
        return (None if outcome.job is None else outcome.job.id), outcome.for_affinity

    try:
        await load(titles[1])
        assert await profile.refresh()
        assert "b.safetensors" in profile.warm["a1111"]
        assert profile.record()["warm_model"] == "b"  # the first of its names, as A1111 has it
        a1 = await aclient.submit(txt2img("a.safetensors", 1), service="a1111")
        b1 = await aclient.submit(txt2img("b.safetensors", 1), service="a1111")
        assert await claim() == (b1.id, True)
        loads = profile.model_loads
        await load(titles[2])  # another user loaded c: b is no longer warm
        assert await profile.refresh()
        assert "b.safetensors" not in profile.warm["a1111"]
        assert "c.safetensors" in profile.warm["a1111"]
        assert profile.record()["warm_model"] == "c"
        b2 = await aclient.submit(txt2img("b.safetensors", 2), service="a1111")
        assert await claim() == (a1.id, False)  # b2 would have passed over a1 with b warm
        assert await claim() == (b2.id, False)
        assert profile.note_job("a1111", derive("a1111", txt2img("b.safetensors", 2))) is True
        assert profile.model_loads == profile.record()["model_loads"] == loads + 1
        assert profile.record()["warm_models"] == {"a1111": ("b.safetensors",)}
    finally:
        await backend.aclose()


# -- bump and cancel in class queues -------------------------------------------------------------


async def test_bumps_move_a_job_within_its_class_queue_and_the_claims_across_classes(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    queue = machine(settings, queues, affinity=False)
    a1 = await aclient.submit(graph("a.safetensors", seed=1))
    b1 = await aclient.submit(graph("b.safetensors", seed=1))
    a2 = await aclient.submit(graph("a.safetensors", seed=2))
    b2 = await aclient.submit(graph("b.safetensors", seed=2))
    a3 = await aclient.submit(graph("a.safetensors", seed=3))
    class_a = (await a1.status()).class_id
    keys = queue.keys
    assert await aclient.bump(a3.id, 5) == 0
    assert await raw.zrange(keys.class_queue(SERVICE, class_a), 0, -1) == [a3.id, a1.id, a2.id]
    # Back to 0: tagged again in band 0, its tenant's next turn there, behind all four.
    assert (await aclient.bump_by(a3.id, -5)).position == 4
    assert await raw.zrange(keys.class_queue(SERVICE, class_a), 0, -1) == [a1.id, a2.id, a3.id]
    assert (await aclient.bump_by(b2.id, -3)).position == 4  # behind every class's band 0
    gpu = Gpu(caps("a.safetensors", "b.safetensors"))
    order = [await claim_now(queue, gpu) for _ in range(6)]
    assert order == [a1.id, b1.id, a2.id, a3.id, b2.id, None]


async def test_a_cancel_leaves_nothing_of_the_job_in_any_key(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    keys = Keys(settings.namespace)
    before = await counters(raw, keys)
    job = await aclient.submit(graph("b.safetensors"), tenant="studio")  # nobody can run b
    class_b = (await job.status()).class_id
    assert await holders(raw, keys, job.id) == sorted(
        [f"q:{SERVICE}:{class_b}", f"waiting:{SERVICE}"]
    )
    assert await aclient.cancel(job.id) == "cancelled"
    assert await holders(raw, keys, job.id) == [f"ended:{SERVICE}:cancelled"]
    assert await counters(raw, keys) == before == {}
    # Its class is empty again: no GPU that gains b later wakes for a job that is gone.
    assert await raw.exists(keys.marker(f"{SERVICE}:{class_b}")) == 0
    assert await claim_now(machine(settings, queues), Gpu(caps("b.safetensors"))) is None


async def test_cancels_and_bumps_racing_claims_leave_each_job_in_one_place(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    """Three GPUs serving overlapping classes claim while an operator cancels every third job
    and bumps every third one up or down. Each job ends once, claimed or cancelled, never
    both; afterwards no sorted set but its ended set holds it, every counter of live jobs is
    back to nothing and no class keeps a wake-up marker."""
    models = ("a.safetensors", "b.safetensors", "c.safetensors")
    jobs = [
        await aclient.submit(graph(models[i % 3], seed=i), priority=i % 2,
                             tenant=("studio", "webapp")[i % 2])
        for i in range(45)
    ]  # fmt: skip
    served = [("a.safetensors", "b.safetensors"), ("b.safetensors", "c.safetensors"),
              ("c.safetensors", "a.safetensors")]  # fmt: skip
    gpus = [Gpu(caps(*pair), warm=pair[:1]) for pair in served]
    machines = [machine(settings, queues) for _ in gpus]
    claimed: list[str] = []
    cancelled_at_once: list[str] = []

    async def run(index: int) -> None:
        while True:
            outcome = await machines[index].claim(
                [SERVICE], f"h{index}", index, 0.0, scopes=gpus[index].scopes
            )
            if outcome.job is None:
                return
            claimed.append(outcome.job.id)
            await machines[index].complete(outcome.job, [])

    async def operate() -> None:
        for i, job in enumerate(jobs):
            with contextlib.suppress(InvalidTransition):  # claimed, or done, already
                if i % 3 == 0 and await aclient.cancel(job.id) == "cancelled":
                    cancelled_at_once.append(job.id)
                elif i % 3 == 1:
                    await aclient.bump_by(job.id, 2 if i % 2 else -2)
            await asyncio.sleep(0)

    await asyncio.gather(operate(), *(run(i) for i in range(3)))
    assert len(claimed) == len(set(claimed))  # none twice
    assert not set(claimed) & set(cancelled_at_once)  # a cancelled job never runs
    assert set(claimed) | set(cancelled_at_once) == {j.id for j in jobs}  # none lost
    keys = Keys(settings.namespace)
    for job in jobs:
        state = (await job.status()).state
        assert state in (JobState.COMPLETED, JobState.CANCELLED)
        assert await holders(raw, keys, job.id) == [f"ended:{SERVICE}:{state.value}"]
    assert await counters(raw, keys) == {}
    markers = [
        k async for k in raw.scan_iter(match=keys.marker(SERVICE).replace("{", "\\{") + ":*")
    ]
    assert markers == []


async def test_a_job_affinity_passed_over_can_still_be_bumped_and_cancelled(
    aclient: AsyncClient, settings: Settings, queues: list[WorkerQueue], raw: aioredis.Redis
) -> None:
    """Affinity made the cold job trade its place with a warm one (it queues on from the warm
    one's place). A bump still puts it first across every class; a cancel of another job the
    trade touched leaves the counters right; in the end nothing is left anywhere."""
    queue = machine(settings, queues)
    warm_gpu = Gpu(caps("a.safetensors", "b.safetensors"), warm=["b.safetensors"])
    cold = await aclient.submit(graph("a.safetensors"), tenant="studio")
    warm = await aclient.submit(graph("b.safetensors"), tenant="studio")
    other = await aclient.submit(graph("b.safetensors", seed=1), tenant="studio")
    outcome = await queue.claim([SERVICE], "h", 0, 0.0, scopes=warm_gpu.scopes)
    assert outcome.job is not None and outcome.job.id == warm.id and outcome.for_affinity
    await queue.complete(outcome.job, [])
    assert (await cold.status()).position == 0  # the warm one's place was still first
    assert (await aclient.bump_by(cold.id, 1)).position == 0
    newer = await aclient.submit(graph("b.safetensors", seed=2), tenant="webapp")
    # Priority first, beyond affinity's window (0): the bumped cold job, though b is warm.
    assert await claim_now(queue, warm_gpu) == cold.id
    assert await aclient.cancel(other.id) == "cancelled"
    keys = Keys(settings.namespace)
    assert await holders(raw, keys, other.id) == [f"ended:{SERVICE}:cancelled"]
    running = {"running:studio": 1}  # the cold job, claimed and not finished
    assert await counters(raw, keys) == {"queued:webapp": 1, "N:0": 1, "N:1": 1, **running}
    assert await claim_now(queue, warm_gpu, 1) == newer.id
    assert await claim_now(queue, warm_gpu, 2) is None
