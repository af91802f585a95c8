"""The checks of ``scripts/chaos.py`` find what they promise to find: a run is planted with a
lost job, a stuck one, a corrupt output, a completion no backend made, a completion a
supervisor of another attempt was told it made, an ok job charged an attempt, a cancel nobody
asked for and a job nobody submitted; a clean job passes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from fleetq import AsyncClient, Settings
from fleetq.model import FaultKind, JobError, Output
from fleetq.worker import WorkerQueue
from supervisor.sim.png import encode_solid_png, rgb_from_int

PORT = 40000


def png_for(plan: Any, color: int | None = None) -> bytes:
    prompt = json.dumps(plan.workflow())
    rgb = rgb_from_int(plan.color if color is None else color)
    return encode_solid_png(plan.width, plan.height, rgb, {"prompt": prompt})


def test_verify_png_accepts_the_real_thing_and_rejects_damage(chaos: ModuleType) -> None:
    plan = chaos.JobPlan(3, "ok", 0.1, 0, 0, 12, 7, 0xA0B0C0)
    good = png_for(plan)
    assert chaos.verify_png(good, plan) is None
    flipped = bytearray(good)
    flipped[-20] ^= 0xFF
    assert "CRC" in chaos.verify_png(bytes(flipped), plan)
    assert "truncated" in chaos.verify_png(good[:-5], plan)
    assert "colour" in chaos.verify_png(png_for(plan, color=0x010203), plan)
    other = chaos.JobPlan(4, "ok", 0.1, 0, 0, 12, 7, 0xA0B0C0)
    assert "tag" in chaos.verify_png(png_for(other), plan)
    assert "IHDR" in chaos.verify_png(png_for(chaos.JobPlan(3, "ok", 0.1, 0, 0, 9, 7, 1)), plan)
    assert chaos.verify_png(b"zombie", plan) == "no PNG signature"


async def test_checks_find_planted_faults(
    chaos: ModuleType, settings: Settings, aclient: AsyncClient, tmp_path: Path
) -> None:
    options = chaos.ChaosOptions(jobs=8, supervisors=1, gpus=1, max_attempts=2, progress=False)
    fleet = chaos.Fleet(options, tmp_path)
    fleet.settings, fleet.fake_bases = settings, [PORT]
    plans = [chaos.JobPlan(i, "ok", 0.1, 0, 0, 8 + i, 9, 0x102030 * (i + 1)) for i in range(8)]
    run = chaos.ChaosRun(options, fleet, plans, [])
    log = chaos.ExecutionLog(tmp_path / "executions-0.jsonl")
    queue = WorkerQueue(settings)

    async def submit(index: int, max_attempts: int = 2, accept: bool = True) -> str:
        plan = plans[index]
        job = await aclient.submit(plan.workflow(), "comfyui", max_attempts=max_attempts)
        if accept:
            run.accepted.append(chaos.Accepted(plan, job.id, time.time(), time.time()))
        return job.id

    async def claim_and_complete(index: int, data: bytes, executed: bool = True) -> None:
        await submit(index)
        claimed = (await queue.try_claim(["comfyui"], "chaos-0", 0)).job
        assert claimed is not None
        name = f"job{index}_00001_.png"
        if executed:
            log.write(e="done", port=PORT, prompt=f"p{index}", tag=index, outcome="success",
                      files=[name])  # fmt: skip
        await queue.complete(claimed, [Output(name, "image/png", data)])

    try:
        await claim_and_complete(0, png_for(plans[0]))  # clean
        await claim_and_complete(1, png_for(plans[1], color=0x000001))  # corrupt output
        await claim_and_complete(2, png_for(plans[2]), executed=False)  # no backend made it
        charged = await submit(3, max_attempts=1)  # an ok job charged for a job fault
        claimed = (await queue.try_claim(["comfyui"], "chaos-0", 0)).job
        assert claimed is not None and claimed.id == charged
        await queue.fail(claimed, FaultKind.JOB, JobError("Oops", "planted", kind=FaultKind.JOB))
        stuck = await submit(4)  # left queued
        cancelled = await submit(5)  # cancelled with no cancel on record
        await aclient.cancel(cancelled)
        stray = await submit(6, accept=False)  # a job nobody got an id for
        run.accepted.append(chaos.Accepted(plans[7], "00000000deadbeef", 0.0, 0.0))  # lost
    finally:
        await queue.aclose()
        log.close()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S,000")
    (tmp_path / "supervisor-chaos-0.log").write_text(
        f"{stamp} INFO supervisor.execution: job {run.accepted[0].job_id} completed on chaos-0:0 "
        "after 0.1 s\n"  # the supervisor that held the lease: fine
        f"{stamp} INFO supervisor.execution: job {run.accepted[1].job_id} completed on chaos-7:1 "
        "after 0.1 s\n"  # a completion Redis attributes to another worker
    )
    report = chaos.ChaosReport(options)
    r = redis.Redis.from_url(settings.redis_url)
    try:
        chaos.check_run(run, report, r)
    finally:
        r.close()
    found = "\n".join(report.violations)
    ids = {a.plan.index: a.job_id for a in run.accepted}
    expected = [
        (ids[1], "is not intact: pixels are not the job's colour"),
        (ids[2], "no execution there made"),
        (ids[1], "supervisors were told they completed it on ['chaos-7:1']"),
        (charged, "an ok job was charged 1 attempt(s)"),
        (charged, "an ok job failed: Oops"),
        (stuck, "stuck in state 'queued'"),
        (cancelled, "cancelled, but nobody asked"),
        ("00000000deadbeef", "lost (acknowledged submit, no trace in Redis)"),
        (stray, "that the submitter never got an id for"),
    ]
    for job_id, text in expected:
        assert any(job_id in v and text in v for v in report.violations), (text, found)
    assert ids[0] not in found, found
    assert report.count("outputs_verified") == 2  # jobs 0 and 2 (made elsewhere, yet intact)
    assert report.count("completions_logged") == 1  # job 0


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_a_submit_lost_to_a_crash_is_tolerated_only_in_the_everysec_window(
    chaos: ModuleType, settings: Settings, tmp_path: Path, fsync: str
) -> None:
    options = chaos.ChaosOptions(jobs=2, supervisors=1, gpus=1, fsync=fsync, progress=False)
    fleet = chaos.Fleet(options, tmp_path)
    fleet.settings, fleet.fake_bases = settings, [PORT]
    plans = [chaos.JobPlan(i, "ok", 0.1, 0, 0, 8, 8, 1) for i in range(2)]
    run = chaos.ChaosRun(options, fleet, plans, [])
    crash = 1000.0
    run.redis_kills = [crash]
    run.accepted = [
        chaos.Accepted(plans[0], "00000000000000a1", crash - 0.5, crash - 0.4),  # in the window
        chaos.Accepted(plans[1], "00000000000000a2", crash - 9.0, crash - 8.9),  # long before
    ]
    report = chaos.ChaosReport(options)
    r = redis.Redis.from_url(settings.redis_url)
    try:
        chaos.check_run(run, report, r)
    finally:
        r.close()
    lost = [v for v in report.violations if "lost (acknowledged submit" in v]
    if fsync == "always":
        assert len(lost) == 2 and not report.fsync_losses
    else:
        assert len(lost) == 1 and "00000000000000a2" in lost[0]
        assert len(report.fsync_losses) == 1 and "00000000000000a1" in report.fsync_losses[0]


async def test_key_audit_after_retention_finds_leftovers_and_passes_the_rest(
    chaos: ModuleType, settings: Settings, aclient: AsyncClient
) -> None:
    queue = WorkerQueue(settings)
    try:
        done = await aclient.submit({"1": {"class_type": "EmptyImage", "inputs": {}}})
        claimed = (await queue.try_claim(["comfyui"], "h", 0)).job
        assert claimed is not None and claimed.id == done.id
        await queue.complete(claimed, [Output("a.png", "image/png", b"x")])
        live = await aclient.submit({"1": {"class_type": "EmptyImage", "inputs": {}}})
    finally:
        await queue.aclose()
    r = redis.Redis.from_url(settings.redis_url)
    try:
        keys = queue.keys
        r.xadd(keys.job_events("00000000deadbeef"), {"type": "cancelled"})  # no TTL, no job
        r.set(keys.prefix + "stray", "1")
        report = chaos.ChaosReport(chaos.ChaosOptions())
        chaos.check_keys_after_retention(settings, report, r)
        assert sorted(report.violations) == [
            f"key audit: {keys.job_events('00000000deadbeef')} belongs to no live job (ttl -1 ms)",
            f"key audit: {keys.prefix}stray is no key of the schema (ttl -1 ms)",
        ]
        assert report.count("audit_live_jobs") == 1 and r.exists(keys.job(live.id))
        assert not r.exists(keys.job(done.id)) and report.count("audit_pruned") == 1
    finally:
        r.close()
