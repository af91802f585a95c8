#!/usr/bin/env python3
"""Chaos run: push thousands of jobs through a fleet while everything fails, then prove that no
job was lost, that no stale completion was accepted, that every output is intact and that
attempts were charged only for faults of the job.

What runs (all on this machine, every process real):

* one ``redis-server`` with the AOF on (``--fsync always`` or ``everysec``), SIGKILLed and
  restarted on the same data at random;
* one fake ComfyUI process per simulated machine, one instance per GPU, each recording every
  prompt it executes to a JSON-lines log that survives its restarts (its ``/history`` does not);
  instances are restarted with ``POST /fake/restart`` at random;
* ``fleetq supervisor --simulate-gpus N`` processes, SIGKILLed (and sometimes SIGTERMed) and
  restarted at random, or frozen (SIGSTOP) past their leases and woken (SIGCONT), with a short
  lease (``FLEETQ_LEASE_MS``);
* a submitter (idempotent submits, retried while Redis is down), operators cancelling and
  bumping at random, simulated GPU faults (``xid=79`` then ``clear`` through the control
  channel), and "zombie" workers that claim a job, freeze until the reaper takes the lease
  back, then try to renew, complete, fail and ack-cancel with their stale token;
* lost replies: supervisors, the submitter, operators and zombies reach Redis through a proxy
  (``tests/chaos/fault_proxy.py``) that loses the reply of a random ``--drop-rate`` of the
  commands after Redis ran them, so redis-py resends them; and Redis stalls (``DEBUG SLEEP``)
  longer than every client's socket timeout, whose commands time out, are resent, and run
  twice once Redis wakes up.

The workload and the chaos schedule are drawn from ``--seed`` before the run starts, so a seed
always asks for the same jobs and the same faults at the same offsets (what the fleet then does
with them depends on timing). After the chaos the fleet drains: every process is up again and
the run waits until nothing is queued or running. Then the checks read Redis (job hashes,
indexes, leases, output blobs, the event stream), the fakes' own execution logs and the
supervisors' logs; see ``check_run`` (``fleetbench/chaos/checks.py``) for the exact list and
docs/RELIABILITY.md for results.
Last, a key audit (``check_keys_after_retention``): every key with a time to live is taken
as expired (retention, output TTL and leases run out), one reaper pass prunes the indexes, and
the namespace must then hold nothing but live jobs and fixed keys.
Exit status 0 when every check passed, 1 on any violation.

    .venv/bin/python scripts/chaos.py --fsync always --seed 1           # the long run
    .venv/bin/python scripts/chaos.py --fsync everysec --seed 1
    .venv/bin/python scripts/chaos.py --jobs 300 --submit-s 25 --supervisors 2   # a short one
    .venv/bin/python scripts/chaos.py --fsync always --seed 1 --jobs 10000 --submit-s 500 \
        --supervisor-kills 50 --redis-kills 4 --stalls 4 --drop-rate 0.005   # the 10,000-job run

The run itself lives in ``scripts/fleetbench/chaos/`` (one module per concept: options, workload,
fakes, fleet, faults, run loop, checks); this file is its command line.
``tests/chaos/test_chaos_short.py`` imports this file and calls :func:`run_chaos`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # run as a script from a checkout, or loaded by the chaos tests
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import redis  # noqa: E402
from fleetbench.chaos.checks import check_keys_after_retention, check_run  # noqa: E402
from fleetbench.chaos.evidence import verify_png  # noqa: E402
from fleetbench.chaos.fakes import ExecutionLog, serve_fakes  # noqa: E402
from fleetbench.chaos.fleet import Fleet  # noqa: E402
from fleetbench.chaos.options import ChaosOptions, ChaosReport  # noqa: E402
from fleetbench.chaos.run import ChaosRun  # noqa: E402
from fleetbench.chaos.state import Accepted  # noqa: E402
from fleetbench.chaos.workload import JobPlan, plan_jobs, plan_schedule, schedule_digest  # noqa: E402

from fleetq.demo.embedded import redis_server_binary  # noqa: E402

# What the chaos tests use from this file, besides run_chaos.
__all__ = [
    "Accepted",
    "ChaosOptions",
    "ChaosReport",
    "ChaosRun",
    "ExecutionLog",
    "Fleet",
    "JobPlan",
    "check_keys_after_retention",
    "check_run",
    "run_chaos",
    "verify_png",
]


# -- entry points ----------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    binary = redis_server_binary() or "redis-server"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return {
        "cpu": f"{model} x {os.cpu_count()}",
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis": version.split()[2] if version.count(" ") >= 2 else version.strip(),
    }


def run_chaos(options: ChaosOptions) -> ChaosReport:
    """Start everything, run the chaos, drain, stop, check; returns the report."""
    plans, schedule = plan_jobs(options), plan_schedule(options)
    report = ChaosReport(options, schedule_digest=schedule_digest(plans, schedule))
    if options.workdir:
        workdir = Path(options.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="fleetq-chaos-"))
    report.workdir = str(workdir)
    fleet = Fleet(options, workdir)
    run: ChaosRun | None = None
    try:
        fleet.start()
        run = ChaosRun(options, fleet, plans, schedule)
        asyncio.run(run.run())
        report.violations.extend(run.violations)
        report.violations.extend(fleet.stop_supervisors())
        checking = time.monotonic()
        r = redis.Redis.from_url(fleet.settings.redis_url)
        try:
            check_run(run, report, r)
            check_keys_after_retention(fleet.settings, report, r)
        finally:
            r.close()
        if fleet.proxy is not None:
            report.counts["replies_dropped"] = fleet.proxy.dropped
        report.timings["check_s"] = time.monotonic() - checking
        report.counts.update({k: v for k, v in run.counts.items() if k not in report.counts})
        report.timings.update(run.timings)
        report.timings["redis_down_s"] = run.redis_down_s
        report.timings["redis_reload_max_s"] = run.redis_reload_max_s
        finished = report.count("completed") + report.count("failed") + report.count("cancelled")
        if run.timings.get("run_s"):
            report.timings["jobs_per_s"] = finished / run.timings["run_s"]
    finally:
        fleet.stop()
    if report.ok and not options.keep_workdir and not options.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def build_parser() -> argparse.ArgumentParser:
    defaults = ChaosOptions()
    p = argparse.ArgumentParser(
        description="Chaos run of a local fleetq fleet; exits 1 on any violation.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        elif name == "fsync":
            p.add_argument(flag, choices=("always", "everysec"), default=value)
        elif value is None:
            p.add_argument(flag, default=None)
        else:
            p.add_argument(flag, type=type(value), default=value)
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve-fakes"]:
        p = argparse.ArgumentParser(prog="chaos.py serve-fakes")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--count", type=int, required=True)
        p.add_argument("--log", required=True)
        fake_args = p.parse_args(args_list[1:])
        serve_fakes(fake_args.port, fake_args.count, Path(fake_args.log))
        return 0
    args = vars(build_parser().parse_args(args_list))
    json_path = args.pop("json")
    options = ChaosOptions(**args)
    if redis_server_binary() is None:
        print("chaos: redis-server is not installed", file=sys.stderr)
        return 2
    report = run_chaos(options)
    print(report.summary())
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine_facts().items()))
    if not report.ok:
        print(f"logs kept in {report.workdir}")
    if json_path:
        payload = {
            "options": asdict(options),
            "counts": dict(sorted(report.counts.items())),
            "violations": report.violations,
            "fsync_losses": report.fsync_losses,
            "notes": report.notes,
            "timings": report.timings,
            "schedule_digest": report.schedule_digest,
            "ok": report.ok,
            "machine": machine_facts(),
        }
        Path(json_path).write_text(json.dumps(payload, indent=2, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
