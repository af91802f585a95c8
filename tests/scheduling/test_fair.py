"""Fair share between tenants: weighted fair queueing within a priority band, against Redis."""

from __future__ import annotations

from typing import Any

import pytest

from fleetq import Client, Settings
from fleetq.errors import InvalidArgument
from fleetq.model import FaultKind, JobError
from fleetq.worker import WorkerQueue
from tests.fixtures import comfy_graph

BAND = 2**41
GRAPH = comfy_graph()


async def claim_ids(worker: WorkerQueue, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        job = (await worker.try_claim(["comfyui"], "h", 0)).job
        assert job is not None
        ids.append(job.id)
    return ids


async def drain(worker: WorkerQueue) -> list[str]:
    ids = []
    while (job := (await worker.try_claim(["comfyui"], "h", 0)).job) is not None:
        ids.append(job.id)
    return ids


def submit_many(client: Client, tenant: str, n: int, priority: int = 0) -> list[str]:
    return [client.submit(GRAPH, priority=priority, tenant=tenant).id for _ in range(n)]


def job_fields(client: Client, job_id: str, *names: str) -> list[str | None]:
    raw = client.store.command("hmget", client.store.keys.job(job_id), list(names))
    return [None if v is None else v.decode() for v in raw]


def queue_score(client: Client, job_id: str) -> int:
    """The job's score in the queue of its requirement class."""
    (cls,) = job_fields(client, job_id, "class")
    key = client.store.keys.class_queue("comfyui", cls or "")
    return int(client.store.command("zscore", key, job_id))


async def test_a_flood_does_not_delay_another_tenants_jobs_beyond_a_fair_share(
    client: Client, worker: WorkerQueue
) -> None:
    flood = submit_many(client, "big", 10_000)
    small = submit_many(client, "small", 10)
    order = await claim_ids(worker, 20)
    # Tenants alternate: the small tenant's i-th job is claimed within the first 2(i+1)
    # claims, instead of after the 10,000 jobs submitted before it.
    assert [j for j in order if j in small] == small
    for i, job_id in enumerate(small):
        assert order.index(job_id) < 2 * (i + 1)
    assert [j for j in order if j not in small] == flood[:10]  # FIFO within the big tenant
    stats = client.stats().service("comfyui")
    assert stats is not None
    counts = {t.tenant: (t.queued, t.running) for t in stats.tenants}
    assert counts == {"big": (9_990, 10), "small": (0, 10)}


async def test_without_fair_share_a_flood_is_served_first(
    settings: Settings, worker: WorkerQueue
) -> None:
    with Client(settings.with_overrides(fair_share=False)) as client:
        flood = submit_many(client, "big", 30)
        small = submit_many(client, "small", 3)
        assert await drain(worker) == flood + small


async def test_weights_share_claims_in_proportion(client: Client, worker: WorkerQueue) -> None:
    client.set_tenant_weight("gold", 3)
    assert client.tenant_weights() == {"gold": 3.0}
    gold = submit_many(client, "gold", 60)
    plain = submit_many(client, "plain", 60)
    order = await claim_ids(worker, 40)
    got_gold = [j for j in order if j in gold]
    got_plain = [j for j in order if j in plain]
    assert 29 <= len(got_gold) <= 31  # 3:1 of 40, give or take a tie at a round's edge
    assert got_gold == gold[: len(got_gold)] and got_plain == plain[: len(got_plain)]
    stats = client.stats().service("comfyui")
    assert stats is not None
    assert {t.tenant: t.weight for t in stats.tenants} == {"gold": 3.0, "plain": 1.0}
    client.set_tenant_weight("gold", 1)  # back to the default: the entry goes
    assert client.tenant_weights() == {}


async def test_fifo_within_each_tenant_when_submits_interleave(
    client: Client, worker: WorkerQueue
) -> None:
    submitted: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    for i in range(30):
        tenant = "abc"[i * 7 % 3] if i % 4 else "a"
        submitted[tenant].append(client.submit(GRAPH, tenant=tenant).id)
    order = await drain(worker)
    for ids in submitted.values():
        assert [j for j in order if j in ids] == ids


async def test_priority_still_comes_strictly_first(client: Client, worker: WorkerQueue) -> None:
    flood = submit_many(client, "big", 50)
    low = client.submit(GRAPH, priority=-1, tenant="small").id
    high = client.submit(GRAPH, priority=1, tenant="small").id
    order = await drain(worker)
    assert order[0] == high and order[-1] == low and order[1:-1] == flood


async def test_tags_survive_reap_promotion_and_requeue(settings: Settings) -> None:
    fast = settings.with_overrides(backoff_base_ms=0, backoff_max_ms=0)
    with Client(fast) as client:
        worker = WorkerQueue(fast)
        try:
            x1, x2, x3, x4 = submit_many(client, "x", 4)  # tags 1, 1001, 2001, 3001
            claimed = [(await worker.try_claim(["comfyui"], "h", g)).job for g in range(3)]
            assert [c.id for c in claimed if c] == [x1, x2, x3]  # V is 2001 now
            y1 = client.submit(GRAPH, tenant="y").id  # starts at V: 2001
            assert job_fields(client, y1, "vtag") == ["2001"]
            # x1's lease expires and the reaper requeues it; x2 fails and is retried after a
            # backoff (promoted by the next claim); x3 has a GPU fault and is requeued.
            keys = worker.keys
            await worker.store.command("zadd", keys.leases, {x1: 0})
            assert (await worker.reap("r")).requeued == 1
            assert claimed[1] and claimed[2]
            assert await worker.fail(claimed[1], FaultKind.JOB, JobError("E", "x")) == "retrying"
            assert await worker.fail(claimed[2], FaultKind.INFRA, JobError("E", "x")) == "requeued"
            for job_id, tag in ((x1, "1"), (x2, "1001"), (x3, "2001")):
                assert job_fields(client, job_id, "vtag") == [tag]
            # Each is back at its own place, ahead of y1 (which started at V = 2001 later).
            order = await drain(worker)
            assert order[:2] == [x1, x2] and set(order[2:4]) == {x3, y1} and order[4] == x4
        finally:
            await worker.aclose()


async def test_a_retry_keeps_its_place_while_the_band_is_busy(
    client: Client, worker: WorkerQueue
) -> None:
    first = client.submit(GRAPH, tenant="x", max_attempts=1).id
    rest = submit_many(client, "x", 3)  # tags 1001, 2001, 3001
    job = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert job is not None and job.id == first
    assert await worker.fail(job, FaultKind.JOB, JobError("E", "x")) == "failed"
    assert client.retry(first) == 0  # its own tag (1) again: the head of the band
    assert job_fields(client, first, "vtag", "vband") == ["1", "0"]
    assert await drain(worker) == [first, *rest]


async def test_after_the_band_went_idle_virtual_time_restarts(
    client: Client, worker: WorkerQueue
) -> None:
    old = client.submit(GRAPH, tenant="x", max_attempts=1).id
    job = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert job is not None
    await worker.fail(job, FaultKind.JOB, JobError("E", "x"))
    # The band is idle: the next busy period starts at virtual time 1, whatever x's finish tag.
    fresh = submit_many(client, "x", 2)
    assert [job_fields(client, j, "vtag")[0] for j in fresh] == ["1", "1001"]
    # A job retried from the older period goes just ahead of the current virtual time.
    assert client.retry(old) == 0
    assert job_fields(client, old, "vtag") == ["0"]
    assert await drain(worker) == [old, *fresh]


async def test_a_bump_tags_the_job_again_in_its_new_band(
    client: Client, worker: WorkerQueue
) -> None:
    client.set_tenant_weight("x", 2)  # quantum 500: x's tags fall between y's, never on them
    a1, a2 = submit_many(client, "x", 2)  # band 0
    b1, b2, b3 = submit_many(client, "y", 3, priority=5)  # tags 1, 1001, 2001
    assert await claim_ids(worker, 2) == [b1, b2]  # V of band 5 is 1001
    assert client.bump(a1, 5) == 0  # starts at V: 1001, ahead of b3 (2001)
    assert client.bump_by(a2, 5).position == 1  # x's next turn in band 5: 1501, after a1
    assert job_fields(client, a1, "vtag", "vband") == ["1001", "5"]
    assert job_fields(client, a2, "vtag", "vband") == ["1501", "5"]
    fair = client.store.command("hgetall", client.store.keys.fair("comfyui"))
    assert (fair[b"N:0"], fair[b"N:5"]) == (b"0", b"5")  # live jobs holding a tag, per band
    assert client.bump(a1, 5) == 0  # the same band again: it keeps its tag and place
    assert job_fields(client, a1, "vtag") == ["1001"]
    assert await drain(worker) == [a1, a2, b3]


async def test_tags_stay_exact_and_inside_their_band_near_the_limit(
    client: Client, worker: WorkerQueue
) -> None:
    keep = client.submit(GRAPH, tenant="z").id  # keeps band 0 busy (N > 0): no restart
    fair_key = client.store.keys.fair("comfyui")
    client.store.command("hset", fair_key, "V:0", str(BAND - 2_500))
    x = submit_many(client, "x", 4)
    y = submit_many(client, "y", 2)
    lower = client.submit(GRAPH, priority=-1, tenant="x").id
    # Tags below the band end are exact (a double holds the score exactly); past it they
    # saturate at BAND - 1 instead of spilling into the next band.
    band0 = 1000 * BAND
    assert [queue_score(client, j) - band0 for j in x] == [
        BAND - 2_500, BAND - 1_500, BAND - 500, BAND - 1,
    ]  # fmt: skip
    assert [queue_score(client, j) - band0 for j in y] == [BAND - 2_500, BAND - 1_500]
    assert queue_score(client, lower) == 1001 * BAND + 1
    order = await drain(worker)
    assert order[0] == keep and order[-1] == lower
    assert [j for j in order if j in x] == x and set(order[1:-1]) == set(x + y)


async def test_per_tenant_counts_follow_claim_finish_and_cancel(
    client: Client, worker: WorkerQueue
) -> None:
    x1, x2, x3 = submit_many(client, "x", 3)
    y1, y2 = submit_many(client, "y", 2)

    def counts() -> dict[str, tuple[int, int]]:
        stats = client.stats().service("comfyui")
        assert stats is not None
        return {t.tenant: (t.queued, t.running) for t in stats.tenants}

    assert counts() == {"x": (3, 0), "y": (2, 0)}
    claimed = {
        j.id: j for j in [(await worker.try_claim(["comfyui"], "h", g)).job for g in range(2)] if j
    }
    assert set(claimed) == {x1, y1}
    assert counts() == {"x": (2, 1), "y": (1, 1)}
    await worker.complete(claimed[x1], [])
    assert client.cancel(y2) == "cancelled"
    assert counts() == {"x": (2, 0), "y": (0, 1)}
    assert client.cancel(y1) == "cancelling"
    assert await worker.fail(claimed[y1], FaultKind.JOB, JobError("E", "x")) == "cancelled"
    assert counts() == {"x": (2, 0)}
    assert client.cancel(x2) == "cancelled" and client.cancel(x3) == "cancelled"
    assert counts() == {}


def test_the_tenant_comes_from_the_argument_the_metadata_or_the_default(client: Client) -> None:
    assert client.submit(GRAPH, tenant="acme").status().tenant == "acme"
    assert client.submit(GRAPH, metadata={"tenant": "globex"}).status().tenant == "globex"
    explicit = client.submit(GRAPH, tenant="acme", metadata={"tenant": "globex"})
    assert explicit.status().tenant == "acme"
    assert client.submit(GRAPH).status().tenant == "default"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tenant": "two words"},
        {"tenant": "a:b"},
        {"tenant": ""},
        {"tenant": "x" * 65},
        {"tenant": "-lead"},
        {"tenant": 7},
        {"tenant": "caf\u00e9"},
        {"metadata": {"tenant": "has space"}},
        {"metadata": {"tenant": 3}},
    ],
)
def test_a_bad_tenant_is_refused_writing_nothing(client: Client, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument, match="tenant"):
        client.submit(GRAPH, **kwargs)
    assert list(client.store.redis.scan_iter(match=client.store.keys.prefix + "*")) == []


@pytest.mark.parametrize(
    ("tenant", "weight"),
    [("ok", 0), ("ok", -1), ("ok", float("nan")), ("ok", 1e6), ("ok", "abc"), ("ok", True),
     ("ok", 0.05), ("bad name", 2)],
)  # fmt: skip
def test_a_bad_weight_is_refused_writing_nothing(
    client: Client, tenant: str, weight: object
) -> None:
    with pytest.raises(InvalidArgument):
        client.set_tenant_weight(tenant, weight)  # type: ignore[arg-type]
    assert client.tenant_weights() == {}
