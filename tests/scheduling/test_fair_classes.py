"""Fair share and requirement classes together, against a real Redis: a job's score in its class
queue is its fair-share score, the tags come from one virtual time per service and band, so a GPU
gets fair order between tenants over whichever classes it serves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest

from fleetq import AsyncClient, Settings
from fleetq.classes import ClassTable, ServiceScope, scope_for
from fleetq.requirements import Capabilities
from fleetq.worker import WorkerQueue

SERVICE = "comfyui"
A, B = "a.safetensors", "b.safetensors"


def graph(checkpoint: str, seed: int) -> dict[str, Any]:
    """A text-to-image graph naming one checkpoint (its requirement class)."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": seed}},
    }


class Gpu:
    """The claiming side of one GPU holding some checkpoints (no warm model: no affinity)."""

    def __init__(self, *checkpoints: str) -> None:
        self.capabilities = Capabilities.make(
            nodes={"CheckpointLoaderSimple", "KSampler"},
            models={"checkpoints": checkpoints},
            vram_gb=24,
        )

    def scopes(self, services: Sequence[str], classes: ClassTable) -> Mapping[str, ServiceScope]:
        return {s: scope_for(classes.get(s), self.capabilities, frozenset()) for s in services}


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[WorkerQueue]:
    made = WorkerQueue(settings)
    yield made
    await made.aclose()


async def submit(aclient: AsyncClient, tenant: str, checkpoints: Sequence[str]) -> list[str]:
    ids = []
    for i, checkpoint in enumerate(checkpoints):
        job = await aclient.submit(graph(checkpoint, seed=i), tenant=tenant)
        ids.append(job.id)
    return ids


async def claims(queue: WorkerQueue, gpu: Gpu, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        outcome = await queue.claim([SERVICE], "h", 0, 0.0, scopes=gpu.scopes)
        assert outcome.job is not None
        ids.append(outcome.job.id)
    return ids


async def test_a_gpu_serving_both_classes_alternates_tenants_across_them(
    aclient: AsyncClient, queue: WorkerQueue
) -> None:
    # The big tenant submits first, in both classes; the small one after it, in both too.
    big = await submit(aclient, "big", [A, B] * 3)
    small = await submit(aclient, "small", [B, A] * 3)
    order = await claims(queue, Gpu(A, B), 12)
    # Submit order would give the six big jobs first. Fair share pairs each tenant's i-th
    # job (equal tags: which of the two comes first is a tie), whatever class it is in.
    for i in range(6):
        assert set(order[2 * i : 2 * i + 2]) == {big[i], small[i]}
    outcome = await queue.claim([SERVICE], "h", 0, 0.0, scopes=Gpu(A, B).scopes)
    assert outcome.job is None


async def test_a_gpu_serving_one_class_gets_its_jobs_in_fair_order(
    aclient: AsyncClient, queue: WorkerQueue
) -> None:
    # Tags (quantum 1000): big a0=1 b0=1001 a1=2001 b1=3001 a2=4001 b2=5001 a3=6001 b3=7001;
    # small a0=1 a1=1001 b0=2001 b1=3001.
    big = await submit(aclient, "big", [A, B] * 4)
    big_a, big_b = big[0::2], big[1::2]
    small = await submit(aclient, "small", [A, A, B, B])
    small_a, small_b = small[:2], small[2:]
    order = await claims(queue, Gpu(A), 6)
    assert set(order[:2]) == {big_a[0], small_a[0]}
    assert order[2:] == [small_a[1], *big_a[1:]]  # submit order would put small's jobs last
    # The claims from class A moved the service's virtual time (to big's a3, 6001): a tenant
    # submitting now to class B starts there, ahead of big's b3 (7001) but after the jobs of B
    # tagged before it.
    late = (await submit(aclient, "late", [B]))[0]
    order = await claims(queue, Gpu(B), 7)
    assert order[:2] == [big_b[0], small_b[0]]
    assert set(order[2:4]) == {big_b[1], small_b[1]}
    assert order[4:] == [big_b[2], late, big_b[3]]
