"""The dashboard's pure parts: workflow summaries, cell formatting, and snapshot building."""

from __future__ import annotations

import json

from fleetq import JobState, Stats
from fleetq.fleet import FleetView, HostView
from fleetq.records import HostRecord
from tests.tui.dash_helpers import comfy_graph, typed_gpu
from tui.demo import NOW_MS, demo_source, job
from tui.snapshot import SnapshotBuilder, jobs_total, sort_jobs
from tui.source import FleetRead, JobFilter
from tui.widgets.format import bar, duration, megabytes, sparkline
from tui.workflow import summarize_workflow


def test_comfyui_summary_counts_nodes_and_names_models() -> None:
    graph = comfy_graph(ckpt="a.safetensors")
    graph["5"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "b.safetensors"}}
    graph["6"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}}
    summary = summarize_workflow(json.dumps(graph))
    assert summary.kind == "ComfyUI graph"
    assert summary.node_count == 6
    assert summary.models == ("a.safetensors", "b.safetensors")
    assert summary.node_class("5") == "LoraLoader"


def test_a1111_summary_names_the_checkpoint() -> None:
    body = {"prompt": "x", "steps": 20, "override_settings": {"sd_model_checkpoint": "rv51"}}
    summary = summarize_workflow(json.dumps(body))
    assert summary.kind == "A1111 txt2img request"
    assert summary.node_count is None
    assert summary.models == ("rv51",)
    assert summary.detail == "20 steps"


def test_unreadable_workflows_do_not_raise() -> None:
    assert summarize_workflow("{nope").kind == "unreadable"
    assert summarize_workflow("[1, 2]").kind == "unreadable"
    assert summarize_workflow(None).kind == "unavailable"


def test_formatting() -> None:
    assert duration(999) == "999ms"
    assert duration(61_000) == "1m01s"
    assert duration(3 * 3600 * 1000 + 120_000) == "3h02m"
    assert bar(0.5, 4) == "██  "
    assert bar(None, 3) == "   "
    assert megabytes(None, 24_000).plain == "N/A"
    assert megabytes(12_288, 24_576).plain == "12.0/24G"
    line = sparkline([0.0, 100.0, -1.0, 50.0], 4, span=4)
    assert line.plain == "▁█ ▅"  # a missing reading is a gap, never a zero
    assert len(sparkline([10.0] * 60, 20).plain) == 20
    assert sparkline([], 5).plain == "     "


def _read(
    hosts: tuple[HostView, ...], drained: tuple[str, ...] = (), now_ms: int = NOW_MS
) -> FleetRead:
    return FleetRead(stats=Stats(now_ms, (), drained), jobs=(), fleet=FleetView(hosts))


def test_history_keeps_one_sample_a_second_for_a_minute() -> None:
    builder = SnapshotBuilder()
    for t in range(70):
        host = HostView("h", True, NOW_MS, HostRecord(), (typed_gpu(0, util=t),))
        snap = builder.build(_read((host,)), JobFilter(), now_ms=NOW_MS + t * 1000)
        # A quick extra refresh (after an action) adds no sample.
        snap = builder.build(_read((host,)), JobFilter(), now_ms=NOW_MS + t * 1000 + 100)
    history = snap.hosts[0].gpus[0].history
    assert len(history) == 60
    assert history[0] == 10.0 and history[-1] == 69.0


def test_offline_host_keeps_its_gpus_marked_offline() -> None:
    builder = SnapshotBuilder()
    online = HostView("h", True, NOW_MS, HostRecord(), (typed_gpu(1), typed_gpu(0)))
    first = builder.build(_read((online,)), JobFilter())
    assert [g.index for g in first.hosts[0].gpus] == [0, 1]
    offline = HostView("h", False, NOW_MS - 9000, HostRecord(), ())
    snap = builder.build(_read((offline,)), JobFilter())
    host = snap.hosts[0]
    assert not host.online
    assert [(g.index, g.online, g.util_pct) for g in host.gpus] == [
        (0, False, None),
        (1, False, None),
    ]


def test_drained_flags_come_from_the_drained_set() -> None:
    builder = SnapshotBuilder()
    host = HostView("h", True, NOW_MS, HostRecord(), (typed_gpu(0), typed_gpu(1)))
    snap = builder.build(_read((host,), drained=("h:1",)), JobFilter())
    assert [g.drained for g in snap.hosts[0].gpus] == [False, True]
    snap = builder.build(_read((host,), drained=("h",)), JobFilter())
    assert snap.hosts[0].drained
    assert all(g.host_drained and not g.drained for g in snap.hosts[0].gpus)


def test_jobs_sort_by_priority_then_age() -> None:
    a = job(1, JobState.QUEUED, age_ms=10_000)
    b = job(2, JobState.QUEUED, age_ms=50_000)
    c = job(3, JobState.RUNNING, age_ms=5_000, priority=3)
    assert [j.id for j in sort_jobs([a, b, c], JobFilter())] == [c.id, b.id, a.id]
    old = job(4, JobState.FAILED, finished_ms=NOW_MS - 50_000)
    new = job(5, JobState.FAILED, finished_ms=NOW_MS - 10_000)
    assert [j.id for j in sort_jobs([old, new], JobFilter("failed"))] == [new.id, old.id]


def test_jobs_total_follows_the_filter() -> None:
    stats = demo_source().stats
    services = stats.services
    assert jobs_total(services, JobFilter()) == 1_284 + 5 + 52 + 1
    assert jobs_total(services, JobFilter("failed", "a1111")) == 3


def test_the_queues_pane_shows_the_busiest_tenants_that_fit() -> None:
    from fleetq.model import ServiceStats, TenantStats
    from tui.widgets.queues import tenants_text

    def service(*tenants: TenantStats) -> ServiceStats:
        return ServiceStats("comfyui", 0, 0, 0, 0, 0, 0, 0, 0, None, False, tenants=tenants)

    assert tenants_text(service()).plain == "-"
    two = service(TenantStats("small", 3, 1), TenantStats("big", 9_990, 10))
    assert tenants_text(two, width=40).plain == "big 9,990/10  small 3/1"
    assert tenants_text(two, width=20).plain == "big 9,990/10 +1"
    many = service(*(TenantStats(f"t{i}", i, 0) for i in range(5)))
    assert tenants_text(many, width=14).plain == "t4 4/0 +4"


def test_find_matches_the_tenant() -> None:
    from dataclasses import replace

    from tui.widgets.jobs import matches

    queued = replace(job(1, JobState.QUEUED), tenant="studio-b")
    assert matches(queued, "studio") and matches(queued, "B")
    assert not matches(queued, "studio-a")


def test_a_stale_drained_record_is_told_by_its_drained_field_not_its_words() -> None:
    """An undrain shows at once: the record's ``drained`` (whatever its text says) is hidden
    once the drain set no longer holds the GPU; other blocks stay shown."""
    builder = SnapshotBuilder()
    stale = typed_gpu(0, drained=True, blocked="vom Operator gesperrt")
    paused = typed_gpu(1, blocked="service paused: comfyui")
    host = HostView("h", True, NOW_MS, HostRecord(), (stale, paused))
    gpus = builder.build(_read((host,)), JobFilter()).hosts[0].gpus
    assert [g.blocked for g in gpus] == [None, "service paused: comfyui"]
    gpus = builder.build(_read((host,), drained=("h:0",)), JobFilter()).hosts[0].gpus
    assert gpus[0].blocked == "vom Operator gesperrt" and gpus[0].drained
