"""The unschedulable marks cost one check per requirement class on the page, and reads only what
is not known yet (against a real Redis; the store's reads are counted, not replaced)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import tui.schedulability
from fleetq import AsyncClient
from tests.tui.dash_helpers import comfy_graph
from tests.tui.test_scheduling_marks import FLUX, SDXL, publish_machine
from tui.schedulability import Schedulability
from tui.source import ReadRequest, RedisSource

Publish = Callable[..., Awaitable[None]]
CHECK = "unschedulable_classes"


class Counted:
    """The calls made to some functions, by name, with their arguments."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.monkeypatch = monkeypatch

    def wrap(self, owner: object, name: str) -> None:
        real = getattr(owner, name)
        is_async = name != CHECK

        async def counted_async(*args: Any) -> Any:
            self.calls.append((name, args))
            return await real(*args)

        def counted(*args: Any) -> Any:
            self.calls.append((name, args))
            return real(*args)

        self.monkeypatch.setattr(owner, name, counted_async if is_async else counted)

    def take(self) -> list[tuple[str, tuple[Any, ...]]]:
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture
def counted(aclient: AsyncClient, monkeypatch: pytest.MonkeyPatch) -> Counted:
    counts = Counted(monkeypatch)
    counts.wrap(aclient.store, "requirement_classes")
    counts.wrap(aclient.store, "capability_documents")
    counts.wrap(tui.schedulability, CHECK)
    return counts


async def test_a_page_costs_one_check_per_class_and_reads_each_thing_once(
    aclient: AsyncClient, publish: Publish, counted: Counted
) -> None:
    sdxl = await publish_machine(aclient, publish, "m1", SDXL)
    for seed in range(40):  # 120 jobs in three classes, one of them unschedulable
        for ckpt in (FLUX, SDXL, "other.safetensors"):
            await aclient.submit(comfy_graph(seed, ckpt=ckpt))
    marks = Schedulability(aclient.store)
    jobs = await aclient.jobs("queued", limit=200)
    assert len(jobs) == 120

    marked = await marks.mark(jobs, await aclient.fleet())
    calls = counted.take()
    reads = sorted((name, len(args[-1])) for name, args in calls if name != CHECK)
    assert reads == [("capability_documents", 1), ("requirement_classes", 3)]  # one read each
    assert [len(args[0]) for name, args in calls if name == CHECK] == [3]  # each class once
    assert Counter(j.unschedulable for j in marked) == {
        f"needs checkpoint {FLUX}": 40,
        "needs checkpoint other.safetensors": 40,
        None: 40,
    }

    # The next refresh, nothing changed: nothing read, nothing checked again.
    again = await marks.mark(await aclient.jobs("queued", limit=200), await aclient.fleet())
    assert counted.take() == []
    assert [j.unschedulable for j in again] == [j.unschedulable for j in marked]

    # A machine with new capabilities: its document alone is read, each class checked again.
    flux = await publish_machine(aclient, publish, "m2", FLUX)
    fleet = await aclient.fleet()
    after = await marks.mark(await aclient.jobs("queued", limit=200), fleet)
    calls = counted.take()
    assert [(name, args[-1]) for name, args in calls if name != CHECK] == [
        ("capability_documents", [flux])
    ]
    assert [len(args[0]) for name, args in calls if name == CHECK] == [3]
    assert Counter(j.unschedulable for j in after) == {
        "needs checkpoint other.safetensors": 40,
        None: 80,
    }
    assert sdxl != flux


async def test_nothing_is_read_without_queued_jobs_that_have_requirements(
    aclient: AsyncClient, publish: Publish, counted: Counted
) -> None:
    await publish_machine(aclient, publish, "m1", SDXL)
    await aclient.submit({"prompt": "a cat"}, service="a1111")  # needs nothing of a machine
    jobs = await aclient.jobs("queued")
    marked = await Schedulability(aclient.store).mark(jobs, await aclient.fleet())
    assert counted.take() == []
    assert marked == tuple(jobs)


async def test_a_refresh_with_a_job_detail_open_reads_the_documents_once_at_most(
    aclient: AsyncClient, publish: Publish, counted: Counted
) -> None:
    await publish_machine(aclient, publish, "m1", SDXL)
    job = await aclient.submit(comfy_graph(1, ckpt=FLUX))
    source = RedisSource(aclient)
    request = ReadRequest(detail_id=job.id)
    first = await source.read(request)
    assert first.detail is not None
    assert first.detail.unschedulable == f"needs checkpoint {FLUX}"
    assert [j.unschedulable for j in first.jobs] == [f"needs checkpoint {FLUX}"]
    reads = [name for name, _ in counted.take() if name == "capability_documents"]
    assert reads == ["capability_documents"]  # the marks read them; the detail reused them
    again = await source.read(request)
    assert again.detail is not None and again.detail.unschedulable == first.detail.unschedulable
    assert [name for name, _ in counted.take() if name == "capability_documents"] == []
