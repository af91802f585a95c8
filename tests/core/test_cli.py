"""The command line end to end, through real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fleetq import Client, Settings
from fleetq.model import Output
from fleetq.store import AsyncStore
from fleetq.worker import WorkerQueue


def fleetq(
    settings: Settings, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEETQ_REDIS_URL": settings.redis_url}
    env.pop("FLEETQ_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "fleetq.cli.main", "--namespace", settings.namespace, *args],
        capture_output=True, text=True, env=env, input=stdin, timeout=60,
    )  # fmt: skip


def test_submit_status_jobs_stats_bump_cancel_retry(
    settings: Settings, client: Client, graph: dict[str, Any], tmp_path: Path
) -> None:
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(graph))
    first = fleetq(settings, "submit", str(wf))
    assert first.returncode == 0, first.stderr
    job_id = first.stdout.strip()
    second = fleetq(settings, "submit", "-", "--priority", "5", "--json", stdin=json.dumps(graph))
    data = json.loads(second.stdout)
    assert data["position"] == 0 and data["state"] == "queued"

    status = fleetq(settings, "status", job_id)
    assert "state      queued" in status.stdout and "position   1" in status.stdout
    as_json = json.loads(fleetq(settings, "status", job_id, "--json").stdout)
    assert as_json["id"] == job_id and as_json["position"] == 1

    listed = fleetq(settings, "jobs", "--state", "queued")
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "SERVICE", "STATE", "PRIO"]
    assert lines[1].startswith(data["id"]) and lines[2].startswith(job_id)

    assert fleetq(settings, "bump", job_id, "9").stdout.strip().endswith("now at position 0")
    stats = json.loads(fleetq(settings, "stats", "--json").stdout)
    assert stats["services"][0]["service"] == "comfyui" and stats["services"][0]["queued"] == 2
    assert fleetq(settings, "cancel", job_id).stdout.startswith("cancelled")
    assert fleetq(settings, "retry", job_id).returncode == 0
    assert client.status(job_id).state.value == "queued"
    assert "paused comfyui" in fleetq(settings, "pause", "comfyui").stdout
    assert "resumed comfyui" in fleetq(settings, "resume", "comfyui").stdout
    asyncio.run(register_host(settings, "gpu-1", gpus=2))
    assert "drained gpu-1:0" in fleetq(settings, "drain", "gpu-1:0").stdout


async def register_host(settings: Settings, host: str, gpus: int) -> None:
    """Publish a host record as a supervisor does (the fleet read sees it as online)."""
    store = AsyncStore(settings)
    try:
        await store.publish_host(host, {"host": host}, [{"index": i} for i in range(gpus)])
    finally:
        await store.aclose()


def test_drain_refuses_a_host_that_never_registered(settings: Settings) -> None:
    done = fleetq(settings, "drain", "nohost:9")
    assert done.returncode == 1
    assert "no supervisor has ever registered as host 'nohost'" in done.stderr
    asyncio.run(register_host(settings, "box-1", gpus=2))
    wrong_gpu = fleetq(settings, "drain", "box-1:9")
    assert wrong_gpu.returncode == 1 and "has no GPU 9 (its GPUs: 0, 1)" in wrong_gpu.stderr
    assert fleetq(settings, "drain", "box-1").stdout.strip() == "drained box-1"
    with Client(settings) as client:
        assert client.fleet().hosts[0].host == "box-1"


def test_stats_of_an_empty_namespace_says_so(settings: Settings) -> None:
    done = fleetq(settings, "stats")
    assert done.returncode == 0
    assert f"no supervisor has ever registered in namespace {settings.namespace!r}" in done.stderr
    asyncio.run(register_host(settings, "box-1", gpus=1))
    assert "no supervisor" not in fleetq(settings, "stats").stderr


def test_user_errors_print_one_line_and_exit_nonzero(settings: Settings, tmp_path: Path) -> None:
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}))
    cases = [
        (("status", "0123456789abcdef"), "no job with id 0123456789abcdef"),
        (("status", "zz"), "is not a job id"),
        (("submit", str(ui)), "export it in API format"),
        (("submit", str(tmp_path / "missing.json")), "cannot read"),
        (("submit", str(ui), "--service", "nope"), "unknown service 'nope'"),
        (("bump", "0123456789abcdef", "5000"), "out of range"),
        (("pause", "nope"), "unknown service"),
        (("drain", "bad host!"), "drain target"),
    ]
    for args, message in cases:
        done = fleetq(settings, *args)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert message in done.stderr, (args, done.stderr)
    down = Settings(redis_url="redis://127.0.0.1:1/0", namespace="x")
    done = fleetq(down, "stats")
    assert done.returncode == 1 and done.stderr.startswith("fleetq: error: cannot reach Redis")


def test_submit_wait_shows_progress_and_saves_outputs(
    settings: Settings, graph: dict[str, Any], tmp_path: Path
) -> None:
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(graph))
    env = {**os.environ, "FLEETQ_REDIS_URL": settings.redis_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetq.cli.main", "--namespace", settings.namespace, "submit",
         str(wf), "--wait", "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip

    async def claim_and_report_progress() -> Any:
        worker = WorkerQueue(settings)
        outcome = await worker.claim(["comfyui"], "gpu-a", 1, timeout_s=30)
        assert outcome.job is not None
        await worker.renew(outcome.job, 0.5, "KSampler 10/20")
        await worker.aclose()
        return outcome.job

    async def complete(job: Any) -> None:
        worker = WorkerQueue(settings)
        await worker.complete(job, [Output("cat_00001_.png", "image/png", b"PNGDATA")])
        await worker.aclose()

    job = asyncio.run(claim_and_report_progress())
    assert proc.stderr is not None
    progress_lines = []
    while not progress_lines or "KSampler 10/20" not in progress_lines[-1]:
        progress_lines.append(proc.stderr.readline())
        assert progress_lines[-1], "the CLI exited before showing progress"
    assert "50% gpu-a:1" in progress_lines[-1]  # the bar names the GPU
    asyncio.run(complete(job))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert (tmp_path / "out" / "cat_00001_.png").read_bytes() == b"PNGDATA"
    assert "saved" in out


def test_submit_wait_reports_failure(
    settings: Settings, graph: dict[str, Any], tmp_path: Path
) -> None:
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(graph))
    env = {**os.environ, "FLEETQ_REDIS_URL": settings.redis_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetq.cli.main", "--namespace", settings.namespace, "submit",
         str(wf), "--wait", "--max-attempts", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip

    async def work() -> None:
        from fleetq.model import FaultKind, JobError

        worker = WorkerQueue(settings)
        outcome = await worker.claim(["comfyui"], "gpu-a", 0, timeout_s=30)
        assert outcome.job is not None
        await worker.fail(
            outcome.job, FaultKind.JOB, JobError("RuntimeError", "out of memory", "3")
        )
        await worker.aclose()

    asyncio.run(work())
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "failed: RuntimeError: out of memory (node 3)" in err
