"""The ETA estimator (fleetq/eta.py): pure arithmetic, checked against hand-worked cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetq.eta import (
    ALPHA,
    DEFAULT_RUN_MS,
    ClassLoad,
    ClassRow,
    EtaRead,
    estimate,
    estimate_from,
    updated_mean,
)
from fleetq.fleet import FleetView, HostView
from fleetq.records import GpuRecord, HostRecord
from fleetq.requirements import Capabilities, Requirements

NOW = 1_000_000


def own(ahead: int, servers: int = 4, mean_ms: float | None = 10_000) -> ClassLoad:
    return ClassLoad("c1", ahead, servers, servers, mean_ms)


def test_no_live_gpu_able_to_run_it_gives_no_estimate() -> None:
    assert estimate(NOW, "c1", [own(3)], gpus=0, busy=0) is None


def test_an_idle_gpu_takes_the_next_job_at_once() -> None:
    eta = estimate(NOW, "c1", [own(0)], gpus=4, busy=3)
    assert eta is not None
    assert eta.start_ms == NOW
    assert eta.finish_ms == NOW + 10_000
    assert (eta.gpus, eta.busy, eta.run_ms) == (4, 3, 10_000)


def test_jobs_ahead_fill_the_idle_gpus_first() -> None:
    # Two idle GPUs take the two jobs ahead; the job waits for the first busy GPU to end:
    # the first of two running jobs spread over one run time ends at m x 1/3.
    eta = estimate(NOW, "c1", [own(2)], gpus=4, busy=2)
    assert eta is not None
    assert eta.start_ms == NOW + round(10_000 / 3)


def test_one_busy_gpu_frees_up_half_a_run_time_away() -> None:
    eta = estimate(NOW, "c1", [own(0, servers=1)], gpus=1, busy=1)
    assert eta is not None
    assert eta.start_ms == NOW + 5_000


def test_each_round_of_the_fleet_adds_one_run_time() -> None:
    # 4 GPUs all busy, 9 ahead: rounds of 4 free-ups; the job takes free-up 9 (0-based):
    # round 2, the second running-derived slot: 2 x m + m x 2/5.
    eta = estimate(NOW, "c1", [own(9)], gpus=4, busy=4)
    assert eta is not None
    assert eta.start_ms == NOW + 20_000 + 4_000
    assert eta.ahead == 9


def test_gpus_that_were_idle_end_their_first_job_after_a_whole_run_time() -> None:
    # 4 GPUs, 1 busy, 3 idle; 4 ahead: 3 go to the idle GPUs, 1 to the busy one (at m/2);
    # the job is free-up 1 of round 0, which is an ex-idle GPU: at m.
    eta = estimate(NOW, "c1", [own(4)], gpus=4, busy=1)
    assert eta is not None
    assert eta.start_ms == NOW + 10_000


def test_a_class_served_by_other_gpus_too_counts_in_proportion() -> None:
    # Class c2 has 8 jobs ahead and 8 servers, of which 4 can also run c1: half of them count.
    loads = [own(2), ClassLoad("c2", 8, 8, 4, 20_000)]
    eta = estimate(NOW, "c1", loads, gpus=4, busy=4)
    assert eta is not None
    assert eta.ahead == pytest.approx(6)
    # Work ahead: 2 x 10 s + 4 x 20 s over 6 jobs: a mean of 16.67 s; free-up 6 of 4 GPUs
    # is round 1, slot 2: m + m x 3/5.
    mean = (2 * 10_000 + 4 * 20_000) / 6
    assert eta.start_ms == NOW + round(mean + mean * 3 / 5)
    assert eta.finish_ms - eta.start_ms == 10_000  # its own class's run time


def test_a_class_none_of_its_gpus_serves_does_not_count() -> None:
    loads = [own(0), ClassLoad("c3", 50, 10, 0, 5_000)]
    eta = estimate(NOW, "c1", loads, gpus=4, busy=0)
    assert eta is not None
    assert eta.start_ms == NOW
    assert eta.ahead == 0


def test_without_history_the_default_run_time_is_assumed() -> None:
    eta = estimate(NOW, "c1", [own(0, mean_ms=None)], gpus=1, busy=1)
    assert eta is not None
    assert eta.run_ms == DEFAULT_RUN_MS and eta.guess
    service_mean = estimate(NOW, "c1", [own(0, mean_ms=None)], 1, 1, default_run_ms=4_000)
    assert service_mean is not None
    assert service_mean.run_ms == 4_000 and not service_mean.guess
    assert service_mean.start_ms == NOW + 2_000


def test_busy_is_clamped_to_the_gpus() -> None:
    eta = estimate(NOW, "c1", [own(0, servers=2)], gpus=2, busy=5)
    assert eta is not None
    assert eta.busy == 2


@given(
    ahead=st.integers(0, 10_000),
    gpus=st.integers(1, 500),
    busy_share=st.floats(0, 1),
    mean_ms=st.floats(1, 1e6),
)
def test_the_start_never_comes_earlier_for_a_job_further_back(
    ahead: int, gpus: int, busy_share: float, mean_ms: float
) -> None:
    busy = round(gpus * busy_share)
    first = estimate(NOW, "c1", [own(ahead, gpus, mean_ms)], gpus, busy)
    second = estimate(NOW, "c1", [own(ahead + 1, gpus, mean_ms)], gpus, busy)
    assert first is not None and second is not None
    assert NOW <= first.start_ms <= second.start_ms
    # Never later than the fleet working through everything ahead one run at a time.
    assert first.start_ms <= NOW + (ahead // gpus + 1) * mean_ms + 1


def test_the_mean_is_plain_at_first_then_exponentially_weighted() -> None:
    mean, runs = updated_mean(None, 0, 1_000)
    assert (mean, runs) == (1_000, 1)
    mean, runs = updated_mean(mean, runs, 3_000)
    assert (mean, runs) == (2_000, 2)
    for _ in range(100):
        mean, runs = updated_mean(mean, runs, 2_000)
    before = mean
    mean, runs = updated_mean(mean, runs, 2_000 + 32_000)
    assert mean == pytest.approx(before + ALPHA * (34_000 - before))


def fleet_of(*gpus: dict[str, object], online: bool = True) -> FleetView:
    """A one-host fleet of GPU records in their wire form (read back as a dashboard does)."""
    records = tuple(r for g in gpus if (r := GpuRecord.from_json(g)) is not None)
    return FleetView((HostView("h", online, NOW, HostRecord(host="h"), records),))


def needs(checkpoint: str) -> Requirements:
    return Requirements.make(models={"checkpoints": [checkpoint]})


def test_the_published_capabilities_say_which_gpus_can_run_which_classes() -> None:
    # GPU 0 has checkpoints a and b, GPU 1 only b (busy), GPU 2 only c. A job of class "a"
    # with 3 "b" jobs ahead: "b" has 2 servers of which 1 runs "a", so 1.5 of them count.
    a, b, c = needs("a.safetensors"), needs("b.safetensors"), needs("c.safetensors")
    docs = {
        "ab": Capabilities.make(models={"checkpoints": ["a.safetensors", "b.safetensors"]}),
        "b": Capabilities.make(models={"checkpoints": ["b.safetensors"]}),
        "c": Capabilities.make(models={"checkpoints": ["c.safetensors"]}),
    }
    fleet = fleet_of(
        {"index": 0, "services": ["comfyui"], "capabilities": {"comfyui": "ab"}},
        {"index": 1, "services": ["comfyui"], "capabilities": {"comfyui": "b"}, "job": {"id": "j"}},
        {"index": 2, "services": ["comfyui"], "capabilities": {"comfyui": "c"}},
    )
    read = EtaRead(NOW, "comfyui", a.class_id, 5_000.0, (
        ClassRow(a.class_id, 0, None, a.canonical), ClassRow(b.class_id, 3, 8_000.0, b.canonical),
        ClassRow(c.class_id, 9, 1_000.0, c.canonical), ClassRow("", 0, None),
    ))  # fmt: skip
    eta = estimate_from(read, fleet, docs)
    assert eta is not None
    assert (eta.gpus, eta.busy, eta.ahead) == (1, 0, 1.5)
    assert eta.run_ms == 5_000  # no run of class "a" on record: the service's mean
    # 2 counted ahead (1.5 rounded) on 1 idle GPU: one after the other, each a run time of
    # the "b" work (8 s).
    assert eta.start_ms == NOW + 16_000
    # A GPU that published no capabilities runs every class; one whose document is not
    # known (not read yet) too.
    assert estimate_from(read, fleet) is not None
    only_c = fleet_of({"index": 2, "services": ["comfyui"], "capabilities": {"comfyui": "c"}})
    assert estimate_from(read, only_c, docs) is None


def test_offline_drained_unhealthy_and_other_service_gpus_cannot_run_it() -> None:
    read = EtaRead(NOW, "comfyui", "", None, (ClassRow("", 0, None),))
    assert (
        estimate_from(read, fleet_of({"index": 0, "services": ["comfyui"]}, online=False)) is None
    )
    for state in ({"drained": True}, {"health": "unhealthy"}, {"health": "lost"}):
        assert estimate_from(read, fleet_of({"index": 0, "services": ["comfyui"], **state})) is None
    busy_backend = {
        "index": 0,
        "services": ["comfyui"],
        "blocked": "backend busy",
        "health": "healthy",
    }
    assert estimate_from(read, fleet_of(busy_backend)) is not None
    assert estimate_from(read, fleet_of({"index": 0, "services": ["a1111"]})) is None
    assert estimate_from(read, fleet_of({"index": 0, "services": ["comfyui"]})) is not None
