"""``fleetq demo``: the whole fleet, as a newcomer runs it, with its summary; and its shutdown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import psutil
import pytest

from fleetq import Client, Settings
from fleetq.demo.run import Demo, DemoOptions
from fleetq.demo.workload import NEW_MODEL, NEW_MODEL_JOBS
from fleetq.model import JobStatus
from supervisor.sim.comfyui.workflows import fake_work_workflow

pytestmark = pytest.mark.slow

#: Environment variable that marks the processes of one demo run (children inherit it).
RUN_TAG = "FLEETQ_TEST_DEMO_RUN"


def processes_tagged(tag: str) -> list[list[str]]:
    """Command lines of the live processes whose environment carries ``RUN_TAG=tag``: the ones
    the demo under test started, and no other demo that runs on this machine."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.environ().get(RUN_TAG) == tag:
                found.append(process.info["cmdline"] or [])
        except (psutil.Error, OSError):
            continue  # gone, a zombie, or another user's
    return found


def test_headless_demo_does_its_work() -> None:
    tag = uuid.uuid4().hex
    done = subprocess.run(
        [sys.executable, "-m", "fleetq.cli.main", "demo", "--headless", "--duration", "20",
         "--machines", "2", "--gpus", "2"],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "FLEETQ_DEBUG": "0", RUN_TAG: tag},
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "verdict: the fleet did its work" in out
    completed = int(re.search(r"completed (\d+)", out).group(1))  # type: ignore[union-attr]
    assert completed >= 10
    shares = re.findall(r"^  (demo-[\w-]+:\d)\s+([\d.]+)%", out, re.MULTILINE)
    assert len(shares) == 2 * 2 + 2  # every simulated GPU of both machines and the A1111 machine
    assert "(fault injected)" in out  # the GPU fault partway through is reported
    assert re.search(r"short\s+p50\s+\d+\s+p95\s+\d+", out)
    # Jobs for a checkpoint no machine had waited, reported unschedulable, until the demo added
    # it to the first machine and that machine read its capabilities again; then they ran.
    n = NEW_MODEL_JOBS
    assert f"{n} jobs needed {NEW_MODEL}, which no machine had" in out
    assert f'before: {n} of {n} reported unschedulable ("needs checkpoint {NEW_MODEL}")' in out
    assert re.search(r"at \d+ s: added to demo-gpu-01, which read its capabilities again", out)
    assert f"after: completed {n} of {n}, none started before it arrived" in out
    # Ready-to-paste connection lines, namespace included.
    assert re.search(
        r"^  export FLEETQ_REDIS_URL=redis://127\.0\.0\.1:\d+/0 FLEETQ_NAMESPACE=demo$",
        done.stderr,
        re.MULTILINE,
    ), done.stderr
    # The shutdown says what it does.
    assert "stopping 3 supervisors" in done.stderr and "stopping 3 fake backends" in done.stderr
    # Nothing this demo started is left running (other demos on the machine are not ours).
    assert processes_tagged(tag) == []


class Running(Exception):
    """Ends a ``wait()`` as soon as the job makes progress on its GPU."""


def stop_once_it_makes_progress(status: JobStatus) -> None:
    if status.state == "running" and status.progress > 0:
        raise Running


def test_quitting_lets_running_jobs_finish_on_their_backends(redis_url: str) -> None:
    """The supervisors stop first and drain while their fake backends still answer, so a job
    that runs at quit completes; stopping the backends with them left it to the drain limit."""
    namespace = "demo-" + uuid.uuid4().hex[:8]
    demo = Demo(DemoOptions(gpus=1, machines=1, a1111=False), namespace=namespace)
    heard: list[str] = []
    try:
        demo.start_fleet(redis_url)
        with Client(Settings(redis_url=redis_url, namespace=namespace)) as client:
            demo.wait_until_online(client)
            job = client.submit(fake_work_workflow(seconds=1.5, steps=10), service="comfyui")
            with pytest.raises(Running):
                job.wait(timeout_s=60, on_progress=stop_once_it_makes_progress)
            demo.stop_fleet(progress=heard.append)
            assert job.status().state == "completed"
    finally:
        demo.group.stop_all()
    assert heard[0].startswith("stopping 1 supervisors")
    assert heard[1] == "stopping 1 fake backends"
