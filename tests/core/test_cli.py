"""The command line end to end, through real subprocesses."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetq import Client, Settings
from fleetq.cli.main import _subparser, _takes, build_parser, main
from fleetq.model import Output
from fleetq.store import AsyncStore
from fleetq.worker import WorkerQueue

ROOT = Path(__file__).resolve().parents[2]


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

    bumped = fleetq(settings, "bump", job_id, "9").stdout.strip()
    assert bumped.endswith("now at position 0 (0 = next)")
    stats = json.loads(fleetq(settings, "stats", "--json").stdout)
    assert stats["services"][0]["service"] == "comfyui" and stats["services"][0]["queued"] == 2
    assert fleetq(settings, "cancel", job_id).stdout.startswith("cancelled")
    assert fleetq(settings, "retry", job_id).returncode == 0
    assert client.status(job_id).state.value == "queued"
    assert "paused comfyui" in fleetq(settings, "pause", "comfyui").stdout
    assert "resumed comfyui" in fleetq(settings, "resume", "comfyui").stdout
    asyncio.run(register_host(settings, "gpu-1", gpus=2))
    assert "drained gpu-1:0" in fleetq(settings, "drain", "gpu-1:0").stdout


def test_tenants_on_submit_in_status_and_stats_and_their_weights(
    settings: Settings, graph: dict[str, Any], tmp_path: Path
) -> None:
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(graph))
    job_id = fleetq(settings, "submit", str(wf), "--tenant", "acme").stdout.strip()
    fleetq(settings, "submit", str(wf), "--meta", "tenant=globex")
    assert "tenant     acme" in fleetq(settings, "status", job_id).stdout
    bad = fleetq(settings, "submit", str(wf), "--tenant", "two words")
    assert bad.returncode != 0 and "tenant 'two words' must be" in bad.stderr
    assert fleetq(settings, "tenant-weight", "acme", "3").stdout.strip() == "tenant acme: weight 3"
    assert json.loads(fleetq(settings, "tenant-weight", "--json").stdout) == {"acme": 3.0}
    refused = fleetq(settings, "tenant-weight", "acme", "0")
    assert (
        refused.returncode != 0 and "a tenant weight must be a number 0.1..1000" in refused.stderr
    )
    lines = fleetq(settings, "stats").stdout.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("TENANT")))
    assert lines[at].split() == ["TENANT", "SERVICE", "QUEUED", "RUNNING", "WEIGHT"]
    assert [line.split() for line in lines[at + 1 : at + 3]] == [
        ["acme", "comfyui", "1", "0", "3"], ["globex", "comfyui", "1", "0", "1"],
    ]  # fmt: skip
    stats = json.loads(fleetq(settings, "stats", "--json").stdout)
    assert stats["services"][0]["tenants"][0] == {
        "tenant": "acme", "queued": 1, "running": 0, "weight": 3.0,
    }  # fmt: skip


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
    # The job id comes first on stdout (a pipe gets it before the job ends), then what was saved.
    assert out.splitlines() == [job.id, f"saved {tmp_path / 'out' / 'cat_00001_.png'}"]
    # The bar ends full, not at the last progress report.
    assert err.splitlines()[-1].startswith("[" + "#" * 30 + "] 100% gpu-a:1"), err


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


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the parser tree: (), ("submit",), ..."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, (*path, name))


def help_page(args: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([*args, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_every_help_page_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    paths = list(walk(parser))
    assert len(paths) >= 20 and ("supervisor",) in paths and ("fake-comfyui",) in paths
    for path in paths:
        page = help_page(path, capsys)
        prog = " ".join(("fleetq", *path))
        assert page.startswith(f"usage: {prog} "), (path, page[:200])
        assert "``" not in page and "python -m" not in page, (path, page)
        command = parser if not path else _subparser(parser, path[0])
        assert command.description, f"{prog} has no description"
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{prog}: {action.option_strings or action.dest} has no help"


QUEUE_COMMANDS = ["submit", "status", "jobs", "stats", "cancel", "retry", "bump", "pause",
                  "resume", "drain", "undrain", "fault", "clear-health",
                  "tenant-weight"]  # fmt: skip


def test_shared_options_only_where_they_mean_something() -> None:
    parser = build_parser()
    takes = {name: _takes(_subparser(parser, name)) for name in [*QUEUE_COMMANDS, "tui",
             "gateway", "supervisor", "demo", "fake-comfyui", "fake-a1111"]}  # fmt: skip
    # A fleet is its Redis, its namespace and the store that holds its outputs.
    fleet = {"redis", "namespace", "output_store"}
    for name in QUEUE_COMMANDS:
        assert takes[name] == {*fleet, "json"}, name
    for name in ("tui", "gateway", "supervisor"):
        assert takes[name] == fleet, name
    for name in ("demo", "fake-comfyui", "fake-a1111"):
        assert takes[name] == set(), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--json"], "fleetq demo: error: unrecognized arguments: --json"),
        (["--json", "demo"], "fleetq demo: error: unrecognized arguments: --json"),
        (["--redis", "redis://h/0", "fake-comfyui"], "unrecognized arguments: --redis"),
        (["tui", "--json"], "fleetq tui: error: unrecognized arguments: --json"),
        (["stats", "--bogus"], "fleetq stats: error: unrecognized arguments: --bogus"),
        (["drain"], "fleetq drain: error: the following arguments are required: HOST[:GPU]"),
        (["jobs", "--limit", "\u0663"], "argument --limit: not an integer"),
        (["bump", "0123456789abcdef", "\uff11"], "argument priority: not an integer"),
        (["fault", "h", "1_0", "xid=79"], "argument gpu: not an integer"),
        (["supervisor", "--gpus", "0,\u0661"], "argument --gpus: takes indices like 0,1,2"),
        (["supervisor", "--simulate-gpus", "many"], "argument --simulate-gpus: not an integer"),
        (["submit", "-", "--timeout", "nan"], "argument --timeout: not a number of seconds"),
        (["demo", "--gpus", "0"], "argument --gpus: must be positive"),
        (["fake-a1111", "--port", "99999"], "argument --port: a port is 0..65535"),
        (["nosuchcommand"], "fleetq: error: argument COMMAND: invalid choice"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(args)
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert err.count("\n") == 1 and message in err, err
    assert err.rstrip().endswith("--help)"), err


def test_submit_hints_at_the_service_of_an_a1111_body(settings: Settings) -> None:
    done = fleetq(settings, "submit", str(ROOT / "examples" / "a1111_txt2img.json"))
    assert done.returncode == 1
    assert "(an A1111 body? add --service a1111)" in done.stderr, done.stderr


def test_a_bad_url_scheme_names_every_scheme(settings: Settings) -> None:
    bad = Settings(redis_url="http://127.0.0.1:1/0", namespace=settings.namespace)
    done = fleetq(bad, "stats")
    assert done.returncode == 1
    assert "redis://, rediss://, unix:// or redis+sentinel://" in done.stderr


def test_action_commands_answer_json(settings: Settings) -> None:
    done = fleetq(settings, "pause", "comfyui", "--json")
    assert json.loads(done.stdout) == {"service": "comfyui", "paused": True, "changed": True}


def test_a_missing_checkpoint_failure_points_to_the_demo_example() -> None:
    from fleetq.cli.commands import _hint
    from fleetq.errors import JobFailed
    from fleetq.model import JobError

    error = JobError("prompt_outputs_failed_validation", "Value not in list", "4")
    assert "examples/fake_comfyui_quick.json" in _hint(JobFailed("0123456789abcdef", error))
    oom = JobError("RuntimeError", "CUDA out of memory", "3")
    assert _hint(JobFailed("0123456789abcdef", oom)) == ""
