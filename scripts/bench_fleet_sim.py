"""Fleet simulation: fleetq's pull dispatch against round-robin push, on one fixed job trace.

The fleet is 30 machines x 8 GPUs = 240 simulated GPUs (by default) in front of 240 fake
ComfyUI instances, all on this machine. Each mode runs the same seeded trace (arrival times and
job durations) against freshly started fake ComfyUI processes:

- pull (fleetq): a private redis-server, 6 ``fleetq supervisor`` processes of 40 simulated GPUs
  each (240 pullers, each bound to its own fake instance), and the trace submitted with
  ``fleetq.AsyncClient.submit`` at each job's arrival time;
- push (what nginx round-robin in front of N ComfyUI does): the same workflows POSTed to
  ``/prompt`` of instance ``i mod 240`` at arrival time, where they queue in the instance's own
  prompt queue; one WebSocket per instance (the client's ``clientId``) follows completions.

Every job is a FakeWork workflow (EmptyImage -> FakeWork -> SaveImage) whose ``seconds`` is the
job's duration and whose ``seed`` is its index in the trace. After each mode, ``GET /history``
of every instance gives when each job started and ended on its GPU (the ``execution_start`` and
``execution_success`` timestamps the fake records, in ms); fleetq's job timelines
(``status().timeline``) give the claim and finish times as well. See ``metrics()`` for how the
idle-while-waiting share is computed.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_fleet_sim.py            # full run, about 6 minutes
    .venv/bin/python scripts/bench_fleet_sim.py --quick    # smoke run, under a minute
    .venv/bin/python scripts/bench_fleet_sim.py --write    # also update docs/BENCHMARKS.md

The markdown goes to stdout; ``--write`` replaces the section "Fleet simulation" of
docs/BENCHMARKS.md (other sections are kept). The simulation itself lives in
``scripts/fleetbench/fleet_sim/``; this file is its command line.

``--scheduling`` runs the scheduling benchmark instead (``fleet_sim/sched_*.py``): 240 GPUs,
20 checkpoints of skewed popularity with a 10 s load, heavy-tailed job lengths, two priority
bands and two tenants, one flooding; plain priority+FIFO (warm-model affinity and fair share
off) against fleetq's scheduling, time-scaled to run in minutes, with the ETA's error::

    .venv/bin/python scripts/bench_fleet_sim.py --scheduling --write     # about 5 minutes
    .venv/bin/python scripts/bench_fleet_sim.py --scheduling --quick     # 16 GPUs, about 1 min
    .venv/bin/python scripts/bench_fleet_sim.py --scheduling --e2e --write   # real time, ~10 min
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # run as a script from a checkout
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fleetbench.docs import command_line, write_doc  # noqa: E402
from fleetbench.fleet_sim.fleet import analyse, run_mode  # noqa: E402
from fleetbench.fleet_sim.metrics import percentile  # noqa: E402
from fleetbench.fleet_sim.report import Report  # noqa: E402
from fleetbench.fleet_sim.sched_metrics import sched_metrics  # noqa: E402
from fleetbench.fleet_sim.sched_report import SchedReport  # noqa: E402
from fleetbench.fleet_sim.sched_run import DEFAULT_POLICIES, POLICIES, run_policy  # noqa: E402
from fleetbench.fleet_sim.sched_trace import (  # noqa: E402
    E2E_HEADING,
    SCHED_E2E,
    SCHED_FULL,
    SCHED_HEADING,
    SCHED_QUICK,
    make_sched_trace,
    without_flood,
)
from fleetbench.fleet_sim.trace import (  # noqa: E402
    FULL,
    HEADING,
    QUICK,
    SHORT_QUANTILE,
    Sizes,
    make_trace,
)
from fleetbench.machine import machine_facts  # noqa: E402
from fleetbench.paths import BENCHMARKS_DOC  # noqa: E402
from fleetbench.processes import Children, children_in_tmp, start_redis  # noqa: E402

DOC = BENCHMARKS_DOC


# -- command line ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="small fleet, one short burst (< 60 s)")
    p.add_argument("--hosts", type=int, help="supervisor processes (default 6)")
    p.add_argument("--gpus-per-host", type=int, help="simulated GPUs per supervisor (default 40)")
    p.add_argument("--fake-processes", type=int, help="processes serving the fakes (default 4)")
    p.add_argument("--median", type=float, help="median job duration, s (default 1.0)")
    p.add_argument("--sigma", type=float, help="lognormal sigma of durations (default 1.2)")
    p.add_argument("--cap", type=float, help="longest job, s (default 20)")
    p.add_argument("--scenarios", help="comma-separated: steady, burst (default both)")
    p.add_argument("--load", type=float, help="steady: offered load (default 0.9)")
    p.add_argument("--span", type=float, help="steady: seconds of arrivals (default 60)")
    p.add_argument("--burst-per-gpu", type=int, help="burst: jobs per GPU (default 10)")
    p.add_argument("--modes", default="pull,push", help="comma-separated: pull, push")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--supervisor-src",
        type=Path,
        metavar="DIR",
        help="run the supervisors from this source tree (default: this checkout)",
    )
    p.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    p.add_argument(
        "--scheduling",
        action="store_true",
        help="the scheduling benchmark (affinity, fair share, ETA) instead",
    )
    p.add_argument(
        "--policies",
        default=",".join(DEFAULT_POLICIES),
        help=f"--scheduling: comma-separated, of {', '.join(POLICIES)} "
        f"(default {','.join(DEFAULT_POLICIES)})",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        help="--scheduling: wall seconds per simulated second (default 0.2)",
    )
    p.add_argument(
        "--e2e",
        action="store_true",
        help="--scheduling: the shorter end-to-end run, 16 GPUs at real time",
    )
    p.add_argument(
        "--dump",
        type=Path,
        metavar="FILE",
        help="--scheduling: also write every job's record (JSON lines) to FILE",
    )
    p.add_argument(
        "--no-baseline",
        action="store_true",
        help="--scheduling: skip the small tenant's run without the flood",
    )
    return p.parse_args(list(argv))


def say(message: str) -> None:
    print(f"[bench-fleet] {message}", file=sys.stderr, flush=True)


def on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_on_private_redis(
    report: Any, prefix: str, heading: str, write: bool, body: Callable[[str, Children], None]
) -> int:
    """Start a private redis-server, run ``body(redis_url, children)``, stop every child
    (the logs are kept when the run failed), then print the report and write it if asked."""
    started = time.perf_counter()
    with children_in_tmp(prefix, say) as children:
        redis_port = start_redis(children, children.log_dir)
        report.facts = machine_facts(redis_port)
        body(f"redis://127.0.0.1:{redis_port}/0", children)
    report.facts["load_after"] = f"{os.getloadavg()[0]:.1f}"
    report.facts["run_s"] = f"{time.perf_counter() - started:.0f}"
    section = report.markdown()
    print(section)
    if write:
        write_doc(section, heading)
        say(f"wrote {DOC.relative_to(ROOT)}")
    return 0


def dump_records(path: Path, result: Any) -> None:
    """Append one JSON line per job of ``result``: the trace's job and what was measured."""
    import dataclasses
    import json

    with path.open("a", encoding="utf-8") as out:
        for r in result.records:
            row = {"policy": result.policy, "trace": result.trace_name, "loaded": r.loaded,
                   **dataclasses.asdict(r.job), **dataclasses.asdict(r.record)}  # fmt: skip
            out.write(json.dumps(row) + "\n")


def main_scheduling(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """The scheduling benchmark: each policy on the same trace, then the small tenant alone."""
    sizes = SCHED_QUICK if args.quick else SCHED_E2E if args.e2e else SCHED_FULL
    heading = E2E_HEADING if args.e2e else SCHED_HEADING
    if args.time_scale:
        sizes = replace(sizes, time_scale=args.time_scale)
    names = [n.strip() for n in args.policies.split(",") if n.strip()]
    unknown = set(names) - set(POLICIES)
    if unknown:
        raise SystemExit(f"--policies: unknown {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(POLICIES)}")  # fmt: skip
    for name in names:  # refuse settings this checkout lacks before starting anything
        POLICIES[name].scaled(sizes.time_scale)
    signal.signal(signal.SIGTERM, on_signal)
    trace = make_sched_trace(sizes, args.seed)
    report = SchedReport(sizes, command_line(argv, Path(__file__)), args.seed, trace,
                         {n: dict(POLICIES[n].settings) for n in names}, heading)  # fmt: skip
    src = (args.supervisor_src or ROOT).resolve()
    runs = [(n, "flood", trace) for n in names]
    if not args.no_baseline:
        # The small tenant without the flood, under the last policy: alone on the fleet it
        # barely competes, so one baseline serves every policy.
        runs.append((names[-1], "no flood", without_flood(trace)))

    def body(redis_url: str, children: Children) -> None:
        for name, trace_name, jobs in runs:
            say(f"{name} ({trace_name}): {len(jobs)} jobs on {sizes.gpus} GPUs")
            result = run_policy(POLICIES[name], trace_name, jobs, sizes, redis_url, children,
                                say, src, args.seed)  # fmt: skip
            report.runs.append((result, sched_metrics(result, sizes)))
            if args.dump:
                dump_records(args.dump, result)

    return run_on_private_redis(report, "fleetq-bench-sched-", heading, args.write, body)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.scheduling:
        return main_scheduling(args, argv)
    sizes = QUICK if args.quick else FULL
    overrides: dict[str, Any] = {
        "hosts": args.hosts, "gpus_per_host": args.gpus_per_host,
        "fake_processes": args.fake_processes, "median_s": args.median, "sigma": args.sigma,
        "cap_s": args.cap, "load": args.load, "span_s": args.span,
        "burst_per_gpu": args.burst_per_gpu,
        "scenarios": tuple(x.strip() for x in args.scenarios.split(",")) if args.scenarios
        else None,
    }  # fmt: skip
    sizes = Sizes(**{**sizes.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    src = (args.supervisor_src or ROOT).resolve()
    if set(modes) - {"pull", "push"} or set(sizes.scenarios) - {"steady", "burst"}:
        raise SystemExit("--modes takes pull,push; --scenarios takes steady,burst")
    sizes = Sizes(**{**sizes.__dict__, "fake_processes": min(sizes.fake_processes, sizes.gpus)})

    signal.signal(signal.SIGTERM, on_signal)
    report = Report(sizes, command_line(argv, Path(__file__)), args.seed,
                    "" if src == ROOT else str(src))  # fmt: skip
    for scenario in sizes.scenarios:
        report.scenarios[scenario] = make_trace(sizes, scenario, args.seed)

    def body(redis_url: str, children: Children) -> None:
        for scenario in sizes.scenarios:
            trace, _ = report.scenarios[scenario]
            short_max = percentile([j.seconds for j in trace], SHORT_QUANTILE)
            for mode in modes:
                say(f"{mode}/{scenario}: {len(trace)} jobs on {sizes.gpus} GPUs")
                result = run_mode(mode, scenario, trace, sizes, redis_url, children, say, src)
                analyse(result, sizes, short_max)
                report.results.append(result)

    return run_on_private_redis(report, "fleetq-bench-fleet-", HEADING, args.write, body)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
