"""Priority then FIFO; bump keeps the place among equals; positions are ranks."""

from __future__ import annotations

from typing import Any

from fleetq import Client, Settings
from fleetq.validation import build_spec
from fleetq.worker import WorkerQueue


async def drain_order(worker: WorkerQueue, services: list[str]) -> list[str]:
    order = []
    while True:
        outcome = await worker.try_claim(services, "h", 0)
        if outcome.job is None:
            return order
        order.append(outcome.job.id)


async def test_higher_priority_first_then_fifo(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    low1 = client.submit(graph, priority=0)
    high1 = client.submit(graph, priority=10)
    low2 = client.submit(graph, priority=0)
    high2 = client.submit(graph, priority=10)
    urgent = client.submit(graph, priority=1000)
    last = client.submit(graph, priority=-1000)
    assert await drain_order(worker, ["comfyui"]) == [
        urgent.id, high1.id, high2.id, low1.id, low2.id, last.id,
    ]  # fmt: skip


async def test_claim_across_services_respects_priority_and_submit_order(
    settings: Settings, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    # Submit order across services holds with fair share off; with it on, each service's band
    # keeps its own virtual time (docs/SCHEDULING.md), so only priority is ordered across them.
    client = Client(settings.with_overrides(fair_share=False))
    a1 = client.submit({"prompt": "a cat", "steps": 4}, service="a1111")
    c1 = client.submit(graph)
    a2 = client.submit({"prompt": "a dog", "steps": 4}, service="a1111", priority=5)
    c2 = client.submit(graph)
    assert await drain_order(worker, ["comfyui", "a1111"]) == [a2.id, a1.id, c1.id, c2.id]


async def test_claim_only_from_requested_services(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    client.submit(graph)
    outcome = await worker.try_claim(["a1111"], "h", 0)
    assert outcome.job is None
    assert client.stats().service("comfyui").queued == 1  # type: ignore[union-attr]


def test_position_is_rank_in_service_queue(client: Client, graph: dict[str, Any]) -> None:
    jobs = [client.submit(graph, priority=p) for p in (0, 0, 5, 0)]
    assert [j.status().position for j in jobs] == [1, 2, 0, 3]


async def test_bump_reorders_and_keeps_place_among_equals(
    settings: Settings, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    # With fair share off; with it on a bump tags the job again (tests/scheduling/test_fair.py).
    client = Client(settings.with_overrides(fair_share=False))
    first = client.submit(graph, priority=5)
    mid = client.submit(graph)
    later = client.submit(graph, priority=5)
    assert client.bump(mid.id, 5) == 1  # between first (earlier) and later (submitted after)
    assert mid.status().priority == 5
    assert await drain_order(worker, ["comfyui"]) == [first.id, mid.id, later.id]


def test_bump_down_moves_job_back(client: Client, graph: dict[str, Any]) -> None:
    a = client.submit(graph)
    b = client.submit(graph)
    assert client.bump(a.id, -1) == 1
    assert b.status().position == 0


def test_jobs_lists_queued_by_priority_then_age(client: Client, graph: dict[str, Any]) -> None:
    a = client.submit(graph)
    b = client.submit(graph, priority=3)
    c = client.submit({"prompt": "x"}, service="a1111", priority=3)
    listed = client.jobs("queued")
    assert [j.id for j in listed] == [b.id, c.id, a.id]
    assert [j.position for j in listed] == [0, 0, 1]
    assert [j.id for j in client.jobs("queued", service="a1111")] == [c.id]
    assert len(client.jobs("queued", limit=2)) == 2


def test_an_idempotent_resubmit_to_another_service_gets_the_jobs_position(
    client: Client, graph: dict[str, Any]
) -> None:
    for _ in range(3):
        client.submit(graph)
    first = client.store.submit(
        build_spec(graph, client.settings, service="comfyui", idempotency_key="k-5")
    )
    again = client.store.submit(
        build_spec({"prompt": "x"}, client.settings, service="a1111", idempotency_key="k-5")
    )
    assert (again.job_id, again.created, again.position) == (first.job_id, False, 3)


async def test_running_page_is_by_priority_when_more_run_than_the_limit(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    priorities = [0, 1, 2, 3, 4, 900]
    for gpu, priority in enumerate(priorities):  # claimed one by one: 900 is claimed last
        job = client.submit(graph, priority=priority)
        assert (await worker.try_claim(["comfyui"], "h", gpu)).job.id == job.id  # type: ignore[union-attr]
    page = client.jobs("running", limit=3)
    assert [j.priority for j in page] == [900, 4, 3]
