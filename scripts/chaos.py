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
supervisors' logs; see ``check_run`` for the exact list and docs/RELIABILITY.md for results.
Last, a key audit (``check_keys_after_retention``): every key with a time to live is taken
as expired (retention, output TTL and leases run out), one reaper pass prunes the indexes, and
the namespace must then hold nothing but live jobs and fixed keys.
Exit status 0 when every check passed, 1 on any violation.

    .venv/bin/python scripts/chaos.py --fsync always --seed 1           # the long run
    .venv/bin/python scripts/chaos.py --fsync everysec --seed 1
    .venv/bin/python scripts/chaos.py --jobs 300 --submit-s 25 --supervisors 2   # a short one
    .venv/bin/python scripts/chaos.py --fsync always --seed 1 --jobs 10000 --submit-s 500 \
        --supervisor-kills 50 --redis-kills 4 --stalls 4 --drop-rate 0.005   # the 10,000-job run

``tests/chaos/test_chaos_short.py`` imports this file and calls :func:`run_chaos`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar, cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import redis  # noqa: E402

from fleetq import AsyncClient, Client, Settings  # noqa: E402
from fleetq.demo.processes import consecutive_free_ports, wait_for_port  # noqa: E402
from fleetq.embedded import RedisServer, redis_server_binary  # noqa: E402
from fleetq.errors import (  # noqa: E402
    InvalidTransition,
    JobNotFound,
    RedisUnavailable,
    StaleLease,
)
from fleetq.keys import Keys  # noqa: E402
from fleetq.model import ClaimedJob, FaultKind, JobError, Output  # noqa: E402
from fleetq.store import SyncStore  # noqa: E402
from fleetq.worker import WorkerQueue  # noqa: E402
from supervisor.fakes.comfyui.options import ComfyUIOptions  # noqa: E402
from supervisor.fakes.comfyui.prompt_queue import PromptQueue, QueueItem  # noqa: E402
from supervisor.fakes.comfyui.server import FakeComfyUI  # noqa: E402
from supervisor.fakes.comfyui.workflows import fake_work_workflow  # noqa: E402
from supervisor.fakes.group import start_group  # noqa: E402

# The reply-dropping proxy and the key audit are shared with the tests.
sys.path.insert(0, str(ROOT / "tests" / "chaos"))
from fault_proxy import FaultProxy  # noqa: E402
from key_audit import audit_keys, live_jobs  # noqa: E402

T = TypeVar("T")
SERVICE = "comfyui"
NAMESPACE = "chaos"
ZOMBIE_HOST = "chaos-zombie"
TERMINAL = ("completed", "failed", "cancelled")
#: A Redis crash under ``appendfsync everysec`` may lose the writes of about the last second
#: (up to two when a slow fsync postpones the write). Acknowledged writes older than this before
#: a crash must survive it in either mode; with ``always`` nothing acknowledged may be lost.
EVERYSEC_WINDOW_S = 2.0
#: Slack between the Redis clock (timelines) and the fakes' clock (execution logs): both are
#: this machine's clock, read by different processes.
CLOCK_SLACK_MS = 250
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: After a fault reaches a supervisor, a puller that already passed its health gate may still
#: claim once: its blocking claim waits up to ``claim_block_s`` (1 s).
GATE_REACTION_MS = 2000


# -- options and report ----------------------------------------------------------------------


@dataclass
class ChaosOptions:
    """One chaos run. Counts of chaos events are spread over the submit period (one per slot
    of equal length, at a random offset in its slot), so a seed gives the same schedule."""

    seed: int = 1
    fsync: str = "always"
    jobs: int = 3000
    #: Submits are spread evenly over this many seconds; the chaos happens in the same period.
    submit_s: float = 150.0
    supervisors: int = 3
    gpus: int = 2
    lease_ms: int = 2000
    max_attempts: int = 2
    # -- the workload ------------------------------------------------------------------------
    error_fraction: float = 0.06
    hang_fraction: float = 0.02
    min_work_s: float = 0.05
    max_work_s: float = 0.35
    hang_timeout_s: float = 1.0
    ok_timeout_s: float = 120.0
    # -- the chaos (events over the submit period) -------------------------------------------
    supervisor_kills: int = 20
    supervisor_terms: int = 4
    #: SIGSTOP a supervisor for longer than a lease, then SIGCONT: a live zombie whose jobs
    #: were taken back and run elsewhere, and whose late writes must all be refused.
    supervisor_pauses: int = 6
    redis_kills: int = 8
    fake_restarts: int = 30
    xids: int = 12
    cancels: int = 150
    bumps: int = 150
    zombies: int = 5
    #: Redis stalls (``DEBUG SLEEP``) of ``stall_s``, longer than every socket timeout (3 s).
    stalls: int = 4
    stall_s: float = 4.0
    #: Share of the commands of supervisors, submitter, operators and zombies whose reply is
    #: lost after Redis ran them (0: no proxy in between).
    drop_rate: float = 0.005
    #: Chaos starts this long after the first submit.
    warmup_s: float = 2.0
    drain_timeout_s: float = 180.0
    workdir: str | None = None
    keep_workdir: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.fsync not in ("always", "everysec"):
            raise ValueError("fsync must be always or everysec")
        if self.jobs < 1 or self.supervisors < 1 or self.gpus < 1:
            raise ValueError("jobs, supervisors and gpus must be positive")
        if self.error_fraction + self.hang_fraction > 1:
            raise ValueError("error_fraction + hang_fraction must be at most 1")
        if not 0 <= self.drop_rate < 0.5:
            raise ValueError("drop_rate must be 0 or more and below 0.5")


@dataclass
class ChaosReport:
    options: ChaosOptions
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    violations: list[str] = field(default_factory=list)
    #: Acknowledged writes missing after an ``everysec`` crash, inside the documented window.
    fsync_losses: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    schedule_digest: str = ""
    workdir: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations

    def count(self, name: str) -> int:
        return self.counts.get(name, 0)

    def summary(self) -> str:
        o, c = self.options, self.count
        lines = [
            f"chaos: seed {o.seed}, appendfsync {o.fsync}, {o.jobs} jobs over {o.submit_s:g} s, "
            f"{o.supervisors} supervisors x {o.gpus} GPUs, lease {o.lease_ms} ms, "
            f"max_attempts {o.max_attempts} (schedule {self.schedule_digest})",
            f"jobs: submitted {c('submitted')} (ok {c('kind_ok')}, error {c('kind_error')}, "
            f"hang {c('kind_hang')}); completed {c('completed')}, failed {c('failed')} "
            f"(RuntimeError {c('failed_RuntimeError')}, Timeout {c('failed_Timeout')}, "
            f"LeaseLost {c('failed_LeaseLost')}, infrastructure cap "
            f"{sum(c(f'failed_infra_capped_{k}') for k in ('ok', 'error', 'hang'))}), cancelled "
            f"{c('cancelled')}; "
            f"not terminal {c('not_terminal')}, missing {c('missing')}",
            f"lifecycle: claims {c('claims')}, requeues {c('requeues')} (lost leases "
            f"{c('lost_leases')}, infra requeues {c('infra_requeues')}), job-fault retries "
            f"{c('retries')}; puller runs ended by a refused stale write "
            f"{c('supervisor_stale_refusals')}; completions logged by the supervisor of the "
            f"completing attempt {c('completions_logged')} (unlogged {c('completions_unlogged')})",
            f"kills: supervisor SIGKILL {c('supervisor_sigkill')}, SIGTERM "
            f"{c('supervisor_sigterm')}, SIGSTOP/SIGCONT {c('supervisor_sigstop')}, restarts "
            f"{c('supervisor_restarts')}; redis SIGKILL "
            f"{c('redis_sigkill')}, stalls {c('redis_stalls')} x {o.stall_s:g} s; replies lost "
            f"{c('replies_dropped')} (drop rate {o.drop_rate:g})",
            f"backend faults: fake restarts {c('fake_restarts')} (+{c('orphan_restarts')} of "
            f"instances stuck on an orphaned prompt); XID 79 {c('xid_sent')} (seen unhealthy "
            f"{c('xid_observed')}, cleared {c('xid_clears')}; no claim in between: "
            f"{c('xid_windows_checked')} checked, {c('xid_windows_skipped')} skipped)",
            f"operators: cancels {c('cancel_requests')} (cancelled {c('cancel_cancelled')}, "
            f"cancelling {c('cancel_cancelling')}, already ended {c('cancel_terminal')}, "
            f"unknown {c('cancel_unknown')}); bumps {c('bump_requests')} (applied "
            f"{c('bump_applied')}, not queued {c('bump_refused')}, unknown {c('bump_unknown')})",
            f"zombies: {c('zombie_claims')} claims, {c('zombie_refused')} stale writes refused, "
            f"{c('zombie_accepted')} accepted",
            f"backends: executions {c('exec_total')} (success {c('exec_success')}, error "
            f"{c('exec_error')}, interrupted {c('exec_interrupted')}), prompts dropped by "
            f"restarts {c('exec_dropped')}",
            f"key audit after retention: {c('audit_expired_keys')} keys with a TTL taken as "
            f"expired, {c('audit_pruned')} index entries pruned, {c('audit_live_jobs')} live "
            f"jobs, {c('audit_leftovers')} leftovers",
            f"durability: acknowledged writes lost {len(self.fsync_losses)} (of "
            f"{c('window_submits')} submits and {c('window_operator_writes')} cancels/bumps "
            f"acknowledged <= {EVERYSEC_WINDOW_S:g} s before a Redis crash); redis down "
            f"{self.timings.get('redis_down_s', 0):.1f} s in total, AOF reload up to "
            f"{self.timings.get('redis_reload_max_s', 0):.2f} s",
            f"time: submit {self.timings.get('submit_s', 0):.0f} s, drain "
            f"{self.timings.get('drain_s', 0):.0f} s, checks {self.timings.get('check_s', 0):.1f}"
            f" s; throughput {self.timings.get('jobs_per_s', 0):.1f} jobs/s",
            f"violations: {len(self.violations)}",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  lost in the everysec window: {v}" for v in self.fsync_losses[:20]]
        lines += [f"  VIOLATION {v}" for v in self.violations[:50]]
        if len(self.violations) > 50:
            lines.append(f"  ... and {len(self.violations) - 50} more")
        return "\n".join(lines)


# -- the workload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobPlan:
    """One job of the workload; ``index`` is its tag (the FakeWork ``seed``)."""

    index: int
    kind: str  # ok | error | hang
    seconds: float
    steps: int
    priority: int
    width: int
    height: int
    color: int

    def workflow(self) -> dict[str, Any]:
        seconds = 0.05 if self.kind == "hang" else self.seconds
        return fake_work_workflow(
            seconds,
            self.steps,
            self.kind,
            seed=self.index,
            filename_prefix=f"chaos/{self.index}/job{self.index}",
            width=self.width,
            height=self.height,
            color=self.color,
        )


def plan_jobs(options: ChaosOptions) -> list[JobPlan]:
    rng = random.Random(f"{options.seed}:jobs")
    plans = []
    for index in range(options.jobs):
        u = rng.random()
        kind = "error" if u < options.error_fraction else "ok"
        if options.error_fraction <= u < options.error_fraction + options.hang_fraction:
            kind = "hang"
        plans.append(
            JobPlan(
                index=index,
                kind=kind,
                seconds=round(rng.uniform(options.min_work_s, options.max_work_s), 2),
                steps=rng.randint(0, 3),
                priority=rng.randint(-3, 3),
                width=rng.randint(8, 40),
                height=rng.randint(8, 40),
                color=rng.getrandbits(24),
            )
        )
    return plans


@dataclass(frozen=True)
class ChaosEvent:
    at_s: float
    kind: str
    params: tuple[tuple[str, float], ...]

    def get(self, name: str) -> float:
        return dict(self.params)[name]


def plan_schedule(options: ChaosOptions) -> list[ChaosEvent]:
    """Every chaos event with its offset from the first submit, drawn from the seed."""
    rng = random.Random(f"{options.seed}:schedule")
    start, end = options.warmup_s, max(options.warmup_s + 1.0, options.submit_s)
    events: list[ChaosEvent] = []

    def spread(kind: str, count: int, draw: Callable[[], dict[str, float]]) -> None:
        slot = (end - start) / max(1, count)
        for i in range(count):
            at = start + slot * (i + rng.uniform(0.1, 0.9))
            events.append(ChaosEvent(round(at, 3), kind, tuple(sorted(draw().items()))))

    sups, gpus = options.supervisors, options.gpus
    spread(
        "supervisor_kill",
        options.supervisor_kills,
        lambda: {"target": rng.randrange(sups), "down_s": rng.uniform(0.2, 3.0)},
    )
    spread(
        "supervisor_term",
        options.supervisor_terms,
        lambda: {"target": rng.randrange(sups), "down_s": rng.uniform(0.2, 2.0)},
    )
    spread("redis_kill", options.redis_kills, lambda: {"down_s": rng.uniform(0.3, 3.0)})
    spread(
        "fake_restart",
        options.fake_restarts,
        lambda: {
            "target": rng.randrange(sups),
            "gpu": rng.randrange(gpus),
            "delay_s": rng.uniform(0.0, 1.5),
        },
    )
    spread(
        "xid",
        options.xids,
        lambda: {
            "target": rng.randrange(sups),
            "gpu": rng.randrange(gpus),
            "clear_after_s": rng.uniform(1.0, 5.0),
        },
    )
    spread("cancel", options.cancels, lambda: {"u": rng.random()})
    spread("bump", options.bumps, lambda: {"u": rng.random(), "priority": rng.randint(-5, 9)})
    spread("zombie", options.zombies, lambda: {"gpu": rng.randrange(8)})
    spread("redis_stall", options.stalls, lambda: {})
    lease_s = options.lease_ms / 1000
    spread(
        "supervisor_pause",
        options.supervisor_pauses,
        lambda: {"target": rng.randrange(sups), "pause_s": rng.uniform(1.5, 3.0) * lease_s},
    )
    events.sort(key=lambda e: (e.at_s, e.kind))
    return events


def schedule_digest(plans: Sequence[JobPlan], events: Sequence[ChaosEvent]) -> str:
    text = json.dumps([[asdict(p) for p in plans], [asdict(e) for e in events]])
    return f"{zlib.crc32(text.encode()):08x}"


# -- the fake ComfyUI machines, with an execution log that survives restarts -----------------


def tag_of(prompt: Any) -> int | None:
    """The chaos tag (FakeWork seed) of a prompt graph."""
    try:
        return int(prompt["2"]["inputs"]["seed"])
    except (KeyError, TypeError, ValueError):
        return None


class ExecutionLog:
    """Appends one JSON line per event to a file shared by the instances of one process."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def write(self, **record: Any) -> None:
        record["t"] = int(time.time() * 1000)
        self.file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.file.close()


def _history_outcome(entry: Mapping[str, Any]) -> tuple[str, list[str]]:
    status = entry.get("status") or {}
    kinds = [m[0] for m in status.get("messages", []) if isinstance(m, list) and m]
    outcome = "success" if status.get("status_str") == "success" else "error"
    if "execution_interrupted" in kinds:
        outcome = "interrupted"
    files = []
    for output in (entry.get("outputs") or {}).values():
        for image in output.get("images", []) if isinstance(output, Mapping) else []:
            files.append(str(image.get("filename")))
    return outcome, files


class RecordingQueue(PromptQueue):
    """ComfyUI's prompt queue, logging each prompt's start and end (with the files it made)."""

    def __init__(
        self, on_change: Callable[[], None], max_history: int, port: int, log: ExecutionLog
    ) -> None:
        super().__init__(on_change, max_history)
        self.port = port
        self.log = log
        self.items: dict[int, QueueItem] = {}

    async def get(self) -> tuple[QueueItem, int]:
        item, task_id = await super().get()
        self.items[task_id] = item
        self.log.write(e="start", port=self.port, prompt=item[1], tag=tag_of(item[2]))
        return item, task_id

    def task_done(self, task_id: int, entry: dict[str, Any]) -> None:
        item = self.items.pop(task_id, None)
        super().task_done(task_id, entry)
        if item is not None:
            outcome, files = _history_outcome(entry)
            self.log.write(
                e="done",
                port=self.port,
                prompt=item[1],
                tag=tag_of(item[2]),
                outcome=outcome,
                files=files,
            )

    def reset(self) -> None:
        dropped = [[item[1], tag_of(item[2])] for item in (*self.items.values(), *self.pending())]
        self.items.clear()
        super().reset()
        self.log.write(e="restart", port=self.port, dropped=dropped)


class RecordingComfyUI(FakeComfyUI):
    def __init__(self, port: int, index: int, log: ExecutionLog) -> None:
        super().__init__("127.0.0.1", port, ComfyUIOptions(), index=index)
        self.queue = RecordingQueue(self._queue_changed, self.options.max_history, port, log)


def serve_fakes(port: int, count: int, log_path: Path) -> None:
    """Blocking (the ``serve-fakes`` sub-command): ``count`` recording fakes until SIGTERM."""
    from supervisor.fakes.group import run_until_signalled

    log = ExecutionLog(log_path)
    try:
        run_until_signalled(
            lambda: start_group(lambda i, p: RecordingComfyUI(p, i, log), port, count)
        )
    finally:
        log.close()


# -- the processes ---------------------------------------------------------------------------


class Fleet:
    """Redis, the fake machines and the supervisors of one run; :meth:`stop` ends them all."""

    def __init__(self, options: ChaosOptions, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        (workdir / "redis").mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(
            appendonly=True,
            appendfsync=options.fsync,
            data_dir=workdir / "redis",
            extra_args=("--enable-debug-command", "local"),  # DEBUG SLEEP: the stalls
        )
        self.settings = Settings(redis_url="redis://127.0.0.1:0/0", namespace=NAMESPACE)
        self.proxy: FaultProxy | None = None
        self.fake_bases: list[int] = []
        self.fakes: list[subprocess.Popen[bytes]] = []
        self.supervisors: list[subprocess.Popen[bytes] | None] = [None] * options.supervisors
        self.started_at: list[list[float]] = [[] for _ in range(options.supervisors)]

    @property
    def lossy_settings(self) -> Settings:
        """What supervisors, the submitter, operators and zombies use: through the proxy that
        loses replies (the checks read Redis directly, through ``settings``)."""
        if self.proxy is None:
            return self.settings
        return self.settings.with_overrides(redis_url=self.proxy.url)

    @staticmethod
    def host(k: int) -> str:
        return f"chaos-{k}"

    def port(self, k: int, gpu: int) -> int:
        return self.fake_bases[k] + gpu

    def where_port(self, host: str, gpu: Any) -> int | None:
        """The port of the fake instance behind ``host``'s GPU ``gpu`` (None: no such GPU)."""
        for k in range(self.options.supervisors):
            if self.host(k) == host and isinstance(gpu, int) and 0 <= gpu < self.options.gpus:
                return self.port(k, gpu)
        return None

    def start(self) -> None:
        self.redis.start()
        o = self.options
        self.settings = Settings(
            redis_url=self.redis.url,
            namespace=NAMESPACE,
            lease_ms=o.lease_ms,
            socket_timeout_s=3.0,
            block_timeout_s=1.0,
            events_maxlen=2_000_000,
            backoff_base_ms=100,
            backoff_max_ms=1000,
        )
        if o.drop_rate > 0:
            self.proxy = FaultProxy(self.redis.port, o.drop_rate, seed=o.seed)
        for k in range(o.supervisors):
            base = consecutive_free_ports(o.gpus)
            self.fake_bases.append(base)
            with open(self.workdir / f"fakes-{k}.log", "wb") as log:  # the child keeps its copy
                self.fakes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(Path(__file__).resolve()),
                            "serve-fakes",
                            "--port",
                            str(base),
                            "--count",
                            str(o.gpus),
                            "--log",
                            str(self.workdir / f"executions-{k}.jsonl"),
                        ],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                        cwd=ROOT,
                    )
                )
            for gpu in range(o.gpus):
                wait_for_port(base + gpu, 30, self.fakes[k])
        for k in range(o.supervisors):
            self.start_supervisor(k)

    def supervisor_env(self) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FLEETQ_LOG_LEVEL": "INFO",
            "FLEETQ_LEASE_MS": str(s.lease_ms),
            "FLEETQ_SOCKET_TIMEOUT_S": str(s.socket_timeout_s),
            "FLEETQ_BLOCK_TIMEOUT_S": str(s.block_timeout_s),
            "FLEETQ_EVENTS_MAXLEN": str(s.events_maxlen),
            "FLEETQ_BACKOFF_BASE_MS": str(s.backoff_base_ms),
            "FLEETQ_BACKOFF_MAX_MS": str(s.backoff_max_ms),
        }

    def start_supervisor(self, k: int) -> subprocess.Popen[bytes]:
        running = self.supervisors[k]
        if running is not None and running.poll() is None:
            raise RuntimeError(f"supervisor {self.host(k)} is already running")
        with open(self.workdir / f"supervisor-{self.host(k)}.log", "ab") as log:
            process = self._popen_supervisor(k, log)
        self.supervisors[k] = process
        self.started_at[k].append(time.time())
        return process

    def _popen_supervisor(self, k: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleetq.cli.main",
                "--redis",
                self.lossy_settings.redis_url,
                "--namespace",
                NAMESPACE,
                "supervisor",
                "--simulate-gpus",
                str(self.options.gpus),
                "--host-id",
                self.host(k),
                "--grace-s",
                "2",
                "--backend",
                f"comfyui=http://127.0.0.1:{{port:{self.fake_bases[k]}}}",
            ],
            env=self.supervisor_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=ROOT,
        )

    def stop_supervisors(self, timeout_s: float = 30.0) -> list[str]:
        """SIGTERM every supervisor (they drain); returns complaints about unclean exits."""
        problems = []
        for process in self.supervisors:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for k, process in enumerate(self.supervisors):
            if process is None:
                continue
            try:
                code = process.wait(timeout=timeout_s)
                if code not in (0, -signal.SIGTERM):
                    problems.append(f"supervisor {self.host(k)} exited with {code} on SIGTERM")
            except subprocess.TimeoutExpired:
                problems.append(
                    f"supervisor {self.host(k)} did not exit {timeout_s:g} s after SIGTERM"
                )
                process.kill()
                process.wait()
        return problems

    def stop(self) -> None:
        for process in self.supervisors:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
        for process in self.fakes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.fakes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.proxy is not None:
            self.proxy.close()
        self.redis.close()


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Accepted:
    plan: JobPlan
    job_id: str
    sent: float
    acked: float


@dataclass
class Request:
    """An operator write: ``reply`` is what Redis said, or ``unknown`` when the connection
    failed (it may or may not have been applied)."""

    at: float
    reply: str
    priority: int | None = None


async def retry_unavailable(call: Callable[[], Awaitable[T]], give_up_s: float = 60.0) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_s
    while True:
        try:
            return await call()
        except RedisUnavailable:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)  # Redis is being restarted: a reconnect backoff


class ChaosRun:
    def __init__(
        self, options: ChaosOptions, fleet: Fleet, plans: list[JobPlan], schedule: list[ChaosEvent]
    ) -> None:
        self.o = options
        self.fleet = fleet
        self.plans = plans
        self.schedule = schedule
        self.settings = fleet.lossy_settings
        self.counts: collections.Counter[str] = collections.Counter()
        self.violations: list[str] = []
        self.accepted: list[Accepted] = []
        self.cancels: dict[str, list[Request]] = collections.defaultdict(list)
        self.bumps: dict[str, list[Request]] = collections.defaultdict(list)
        #: job id -> when a zombie claimed it
        self.zombie_jobs: dict[str, float] = {}
        #: (supervisor, GPU, XID sent, cleared): no claim may start there in between.
        self.xid_windows: list[tuple[int, int, float, float]] = []
        self.redis_kills: list[float] = []
        self.redis_outages: list[tuple[float, float]] = []
        #: (supervisor, SIGSTOP, SIGCONT)
        self.pauses: list[tuple[int, float, float]] = []
        self.redis_down_s = 0.0
        self.redis_reload_max_s = 0.0
        self.redis_down = False
        self.stalling = False
        #: (DEBUG SLEEP sent, answered)
        self.stalls: list[tuple[float, float]] = []
        self.restarting: set[int] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.history: dict[int, dict[str, Any]] = {}
        self.timings: dict[str, float] = {}

    def violation(self, text: str) -> None:
        self.violations.append(text)
        print(f"chaos: VIOLATION {text}", file=sys.stderr, flush=True)

    def say(self, text: str) -> None:
        if self.o.progress:
            print(f"chaos: {text}", file=sys.stderr, flush=True)

    async def run(self) -> None:
        async with AsyncClient(self.settings) as client, aiohttp.ClientSession() as http:
            self.client, self.http = client, http
            self.sync_client = Client(self.settings)
            try:
                await self._wait_online()
                await self._main()
            finally:
                self.sync_client.close()

    async def _wait_online(self, timeout_s: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        wanted = {self.fleet.host(k) for k in range(self.o.supervisors)}
        while True:
            view = await self.client.fleet()
            online = {h.host for h in view.hosts if h.online}
            if wanted <= online:
                return
            if loop.time() > deadline:
                raise RuntimeError(
                    f"supervisors not online after {timeout_s:g} s: {sorted(wanted - online)}"
                )
            await asyncio.sleep(0.2)  # fleet records are published once a second

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        watchers = [
            asyncio.create_task(self._watch_supervisors()),
            asyncio.create_task(self._janitor()),
            asyncio.create_task(self._report_progress(started)),
        ]
        try:
            submitter = asyncio.create_task(self._submitter(started))
            await self._run_schedule(started)
            await submitter
            self.timings["submit_s"] = loop.time() - started
            await self._settle()
            drain_started = loop.time()
            await self._drain()
            self.timings["drain_s"] = loop.time() - drain_started
            self.timings["run_s"] = loop.time() - started
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self._collect_history()

    async def _settle(self) -> None:
        """Wait for every chaos action, restarts they scheduled included."""
        while True:
            pending = [task for task in self.tasks if not task.done()]
            if not pending and not self.restarting and not self.redis_down:
                return
            await asyncio.gather(*pending)
            await asyncio.sleep(0.1)  # the watcher may schedule a restart meanwhile

    # -- load and operators ------------------------------------------------------------------

    async def _submitter(self, started: float) -> None:
        loop = asyncio.get_running_loop()
        for plan in self.plans:
            delay = started + plan.index * self.o.submit_s / self.o.jobs - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the submit pace of the workload
            await self._submit(plan)

    async def _submit(self, plan: JobPlan) -> None:
        timeout_s = self.o.hang_timeout_s if plan.kind == "hang" else self.o.ok_timeout_s
        while True:
            sent = time.time()
            try:
                job = await self.client.submit(
                    plan.workflow(),
                    SERVICE,
                    plan.priority,
                    max_attempts=self.o.max_attempts,
                    timeout_s=timeout_s,
                    metadata={"chaos": plan.index},
                    idempotency_key=f"chaos-{self.o.seed}-{plan.index}",
                )
            except RedisUnavailable:
                self.counts["submit_retries"] += 1
                await asyncio.sleep(0.1)  # Redis is down: retry (the key makes it idempotent)
                continue
            self.accepted.append(Accepted(plan, job.id, sent, time.time()))
            return

    def _recent_job(self, u: float, window: int = 40) -> str | None:
        if not self.accepted:
            return None
        recent = self.accepted[-window:]
        return recent[int(u * len(recent))].job_id

    async def _cancel(self, event: ChaosEvent) -> None:
        job_id = self._recent_job(event.get("u"))
        if job_id is None:
            return
        self.counts["cancel_requests"] += 1
        try:
            reply = await self.client.cancel(job_id, by="chaos")
        except InvalidTransition:
            reply = "terminal"
        except JobNotFound:
            reply = "missing"
        except RedisUnavailable:
            reply = "unknown"
        self.counts[f"cancel_{reply}"] += 1
        self.cancels[job_id].append(Request(time.time(), reply))

    async def _bump(self, event: ChaosEvent) -> None:
        job_id = self._recent_job(event.get("u"), window=80)
        if job_id is None:
            return
        priority = int(event.get("priority"))
        self.counts["bump_requests"] += 1
        try:
            await self.client.bump(job_id, priority)
            reply = "applied"
        except InvalidTransition:
            reply = "refused"
        except JobNotFound:
            reply = "missing"
        except RedisUnavailable:
            reply = "unknown"
        self.counts[f"bump_{reply}"] += 1
        self.bumps[job_id].append(Request(time.time(), reply, priority))

    # -- the chaos ---------------------------------------------------------------------------

    async def _run_schedule(self, started: float) -> None:
        loop = asyncio.get_running_loop()
        actions: dict[str, Callable[[ChaosEvent], Awaitable[None]]] = {
            "supervisor_kill": lambda e: self._kill_supervisor(e, term=False),
            "supervisor_term": lambda e: self._kill_supervisor(e, term=True),
            "supervisor_pause": self._pause_supervisor,
            "redis_kill": self._kill_redis,
            "fake_restart": self._restart_fake,
            "xid": self._xid,
            "cancel": self._cancel,
            "bump": self._bump,
            "zombie": self._zombie,
            "redis_stall": self._stall_redis,
        }
        for event in self.schedule:
            delay = started + event.at_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the chaos schedule
            self.tasks.append(asyncio.create_task(self._guard(actions[event.kind], event)))

    async def _guard(
        self, action: Callable[[ChaosEvent], Awaitable[None]], event: ChaosEvent
    ) -> None:
        try:
            await action(event)
        except Exception as e:  # a harness fault must not hide behind the chaos
            self.violation(f"harness: {event.kind} at {event.at_s} s raised {e!r}")

    def _pick_supervisor(self, target: int) -> int | None:
        n = self.o.supervisors
        for k in [(target + i) % n for i in range(n)]:
            process = self.fleet.supervisors[k]
            if k not in self.restarting and process is not None and process.poll() is None:
                return k
        return None

    async def _kill_supervisor(self, event: ChaosEvent, term: bool) -> None:
        k = self._pick_supervisor(int(event.get("target")))
        if k is None:
            self.counts["supervisor_kill_skipped"] += 1
            return
        process = self.fleet.supervisors[k]
        assert process is not None
        self.restarting.add(k)
        try:
            if term:
                self.counts["supervisor_sigterm"] += 1
                process.send_signal(signal.SIGTERM)
                try:
                    code = await asyncio.to_thread(process.wait, 30)
                except subprocess.TimeoutExpired:
                    self.violation(f"supervisor {self.fleet.host(k)} hung 30 s after SIGTERM")
                    process.kill()
                    code = await asyncio.to_thread(process.wait)
                if code not in (0, -signal.SIGTERM):  # -SIGTERM: before its handlers were set
                    self.violation(f"supervisor {self.fleet.host(k)} exited {code} on SIGTERM")
            else:
                self.counts["supervisor_sigkill"] += 1
                process.kill()
                await asyncio.to_thread(process.wait)
            await asyncio.sleep(event.get("down_s"))  # the machine stays down a while
            self.fleet.start_supervisor(k)
            self.counts["supervisor_restarts"] += 1
        finally:
            self.restarting.discard(k)

    async def _pause_supervisor(self, event: ChaosEvent) -> None:
        k = self._pick_supervisor(int(event.get("target")))
        if k is None:
            self.counts["supervisor_pause_skipped"] += 1
            return
        process = self.fleet.supervisors[k]
        assert process is not None
        self.restarting.add(k)
        stopped = time.time()
        try:
            process.send_signal(signal.SIGSTOP)
            self.counts["supervisor_sigstop"] += 1
            await asyncio.sleep(event.get("pause_s"))  # frozen past its leases
        finally:
            process.send_signal(signal.SIGCONT)
            self.pauses.append((k, stopped, time.time()))
            self.restarting.discard(k)

    async def _kill_redis(self, event: ChaosEvent) -> None:
        if self.redis_down:
            self.counts["redis_kill_skipped"] += 1
            return
        self.redis_down = True
        server = self.fleet.redis
        try:
            killed = time.time()
            server.kill()
            self.redis_kills.append(killed)
            self.counts["redis_sigkill"] += 1
            if server.process is not None and server.process.stderr is not None:
                server.process.stderr.close()
            await asyncio.sleep(event.get("down_s"))  # Redis stays down a while
            starting = time.time()
            await asyncio.to_thread(server.start, 60.0)
            now = time.time()
            self.redis_outages.append((killed, now))
            self.redis_down_s += now - killed
            self.redis_reload_max_s = max(self.redis_reload_max_s, now - starting)
        finally:
            self.redis_down = False

    async def _stall_redis(self, event: ChaosEvent) -> None:
        """Freeze Redis (DEBUG SLEEP) longer than every client's socket timeout: commands in
        flight time out and are resent, and both copies run once Redis wakes up."""
        if self.redis_down or self.stalling:
            self.counts["redis_stall_skipped"] += 1
            return
        self.stalling = True
        r = redis.Redis(port=self.fleet.redis.port, socket_timeout=self.o.stall_s + 30)
        started = time.time()
        try:
            await asyncio.to_thread(r.execute_command, "DEBUG", "SLEEP", f"{self.o.stall_s:g}")
            self.counts["redis_stalls"] += 1
        except redis.exceptions.RedisError:  # a Redis kill cut it short
            self.counts["redis_stall_cut"] += 1
        finally:
            r.close()
            self.stalls.append((started, time.time()))
            self.redis_outages.append((started, time.time()))
            self.stalling = False

    async def _restart_fake(self, event: ChaosEvent, reason: str = "fake_restarts") -> None:
        port = self.fleet.port(int(event.get("target")), int(event.get("gpu")))
        await self._post_restart(port, event.get("delay_s"))
        self.counts[reason] += 1

    async def _post_restart(self, port: int, delay_s: float) -> None:
        url = f"http://127.0.0.1:{port}/fake/restart"
        async with self.http.post(url, json={"delay_s": delay_s}) as answer:
            if answer.status != 200:
                raise RuntimeError(f"POST {url} answered {answer.status}")

    async def _control(self, host: str, gpu: int, spec: str) -> None:
        command = {"type": "fault", "gpu": gpu, "spec": spec}

        async def send() -> str:
            return await asyncio.to_thread(self.sync_client.send_control, host, command)

        await retry_unavailable(send)

    async def _xid(self, event: ChaosEvent) -> None:
        """XID 79 (fallen off the bus) on one GPU; the puller must stop claiming there until
        the operator clears it. The GPU's published health must turn unhealthy."""
        k, gpu = int(event.get("target")), int(event.get("gpu"))
        host = self.fleet.host(k)
        await self._control(host, gpu, "xid=79")
        sent = time.time()
        self.counts["xid_sent"] += 1
        loop = asyncio.get_running_loop()
        clear_at = loop.time() + event.get("clear_after_s")
        observed = False
        while loop.time() < clear_at:
            if not observed:
                with contextlib.suppress(RedisUnavailable):
                    observed = await self._gpu_unhealthy(host, gpu)
                    self.counts["xid_observed"] += observed
            await asyncio.sleep(min(0.25, max(0.0, clear_at - loop.time())))  # health is
            # published once a second; there is no event to wait on
        cleared = time.time()
        await self._control(host, gpu, "clear")
        self.counts["xid_clears"] += 1
        self.xid_windows.append((k, gpu, sent, cleared))

    async def _gpu_unhealthy(self, host: str, gpu: int) -> bool:
        for view in (await self.client.fleet()).hosts:
            if view.host == host and view.online:
                for record in view.gpus:
                    if record.get("index") == gpu and record.get("health") != "healthy":
                        return True
        return False

    async def _zombie(self, event: ChaosEvent) -> None:
        """Claim a job, freeze (no renewals) until the reaper took the lease back, then try
        every write with the stale token: at once, while someone else runs it, and after it
        ended. Every one must be refused."""
        queue = WorkerQueue(self.settings)
        gpu = int(event.get("gpu"))
        try:
            job: ClaimedJob | None = None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while job is None and loop.time() < deadline:
                # A blocking claim, woken by submits like any idle puller's.
                wait_s = max(0.1, min(2.0, deadline - loop.time()))
                try:
                    job = (await queue.claim([SERVICE], ZOMBIE_HOST, gpu, wait_s)).job
                except RedisUnavailable:
                    await asyncio.sleep(0.2)  # Redis is down: a reconnect backoff
            if job is None:
                self.counts["zombie_skipped"] += 1
                return
            self.counts["zombie_claims"] += 1
            self.zombie_jobs[job.id] = time.time()
            phases = [
                ("reaped", lambda s: s.state.value != "running" or s.claims != job.claims),
                ("reclaimed", lambda s: s.state.value != "queued" and s.claims > job.claims),
                ("ended", lambda s: s.is_terminal),
            ]
            for name, reached in phases:
                if await self._wait_status(job.id, reached, timeout_s=60):
                    await self._stale_writes(queue, job, name)
        finally:
            await queue.aclose()

    async def _wait_status(
        self, job_id: str, reached: Callable[[Any], bool], timeout_s: float
    ) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            try:
                status = await self.client.status(job_id)
                if reached(status):
                    return True
                if status.is_terminal:
                    return False  # it ended without passing through this phase
            except RedisUnavailable:
                pass
            except JobNotFound:
                return False
            await asyncio.sleep(0.1)  # polling one job's state; test code, not the hot path
        return False

    async def _stale_writes(self, queue: WorkerQueue, job: ClaimedJob, phase: str) -> None:
        junk = [Output("zombie.png", "image/png", b"not a png, written by a zombie")]
        error = JobError("Zombie", "a stale worker reports a failure", kind="job")
        writes: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("renew", lambda: queue.renew(job, 0.5, "zombie")),
            ("complete", lambda: queue.complete(job, junk)),
            ("fail", lambda: queue.fail(job, FaultKind.JOB, error)),
            ("fail-infra", lambda: queue.fail(job, FaultKind.INFRA, error)),
            ("ack_cancel", lambda: queue.ack_cancel(job)),
        ]
        for name, write in writes:
            try:
                await retry_unavailable(write)
            except StaleLease:
                self.counts["zombie_refused"] += 1
                continue
            self.counts["zombie_accepted"] += 1
            self.violation(
                f"job {job.id}: a zombie's {name} with a stale token was accepted ({phase})"
            )

    # -- watchers ----------------------------------------------------------------------------

    async def _watch_supervisors(self) -> None:
        """A supervisor that exits without being told to is a violation; it is restarted.
        (Before commit 200272d one started while Redis was down exited with status 1.)"""
        while True:
            await asyncio.sleep(0.5)  # checking child processes; there is no event to wait on
            for k, process in enumerate(self.fleet.supervisors):
                if k in self.restarting or process is None or process.poll() is None:
                    continue
                self.violation(
                    f"supervisor {self.fleet.host(k)} exited by itself with {process.returncode}"
                )
                self.fleet.start_supervisor(k)

    async def _janitor(self) -> None:
        """An operator restarts a ComfyUI instance that has been running a prompt nobody owns
        (its supervisor was killed mid-job) for two looks in a row: a hung prompt would block
        that GPU forever, since a supervisor never interrupts a prompt it did not submit."""
        suspects: dict[int, str] = {}
        while True:
            await asyncio.sleep(2.0)  # a periodic look, as an operator would take
            try:
                running = await self.client.jobs("running", SERVICE, limit=1000)
            except RedisUnavailable:
                continue
            owned = {(s.host, s.gpu) for s in running}
            for k in range(self.o.supervisors):
                for gpu in range(self.o.gpus):
                    port = self.fleet.port(k, gpu)
                    try:
                        async with self.http.get(f"http://127.0.0.1:{port}/fake/state") as a:
                            state = await a.json()
                    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                        suspects.pop(port, None)
                        continue
                    prompt = state["running"][0] if state["running"] else None
                    if prompt is None or (self.fleet.host(k), gpu) in owned:
                        suspects.pop(port, None)
                    elif suspects.get(port) == prompt:
                        suspects.pop(port)
                        await self._post_restart(port, 0.0)
                        self.counts["orphan_restarts"] += 1
                    else:
                        suspects[port] = prompt

    async def _report_progress(self, started: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(5.0)  # a progress line every five seconds
            try:
                stats = await self.client.stats()
            except RedisUnavailable:
                continue
            s = next(x for x in stats.services if x.service == SERVICE)
            c = self.counts
            self.say(
                f"{loop.time() - started:5.0f} s: submitted {len(self.accepted)}, queued "
                f"{s.queued}, running {s.running}, completed {s.completed}, failed {s.failed}, "
                f"cancelled {s.cancelled} | kills {c['supervisor_sigkill']}+"
                f"{c['supervisor_sigterm']}, redis {c['redis_sigkill']}, fakes "
                f"{c['fake_restarts']}+{c['orphan_restarts']}, xid {c['xid_sent']}, zombies "
                f"{c['zombie_claims']}"
            )

    # -- the drain ---------------------------------------------------------------------------

    async def _drain(self) -> None:
        """No more chaos: every process up, every GPU cleared; wait until nothing is queued,
        delayed or running."""
        for k in range(self.o.supervisors):
            process = self.fleet.supervisors[k]
            if process is None or process.poll() is not None:
                self.fleet.start_supervisor(k)
            for gpu in range(self.o.gpus):
                await self._control(self.fleet.host(k), gpu, "clear")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.o.drain_timeout_s
        self.say("drain: chaos stopped; waiting for the fleet to finish every job")
        while True:
            stats = await retry_unavailable(self.client.stats)
            s = next(x for x in stats.services if x.service == SERVICE)
            leases = await retry_unavailable(
                lambda: self.client.store.command("zcard", self.client.store.keys.leases)
            )
            if s.queued == 0 and s.running == 0 and int(leases) == 0:
                return
            if loop.time() > deadline:
                self.violation(
                    f"drain: after {self.o.drain_timeout_s:g} s {s.queued} jobs "
                    f"still queued and {s.running} running"
                )
                return
            await asyncio.sleep(0.5)  # the drain is watched, not waited on

    async def _collect_history(self) -> None:
        """Each instance's own ``/history`` (since its last restart), to cross-check the logs."""
        for k in range(self.o.supervisors):
            for gpu in range(self.o.gpus):
                port = self.fleet.port(k, gpu)
                async with self.http.get(f"http://127.0.0.1:{port}/history") as answer:
                    self.history[port] = await answer.json()


# -- the checks ------------------------------------------------------------------------------


def verify_png(data: bytes, plan: JobPlan) -> str | None:
    """None when ``data`` is a well-formed PNG of ``plan``'s size and colour whose embedded
    prompt carries ``plan``'s tag; otherwise what is wrong."""
    if not data.startswith(PNG_SIGNATURE):
        return "no PNG signature"
    pos, idat, header, text = len(PNG_SIGNATURE), [], b"", {}
    while pos < len(data):
        if pos + 12 > len(data):
            return "truncated chunk"
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            return f"truncated {kind!r} chunk"
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            return f"bad CRC in {kind!r}"
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"tEXt":
            key, _, value = body.partition(b"\x00")
            text[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"IEND":
            break
    if pos != len(data):
        return "bytes after IEND"
    if len(header) != 13:
        return "no IHDR"
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    if (width, height, depth, colour_type) != (plan.width, plan.height, 8, 2):
        return (
            f"IHDR {width}x{height} depth {depth} type {colour_type}, expected "
            f"{plan.width}x{plan.height} RGB8"
        )
    try:
        pixels = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        return f"IDAT does not inflate: {e}"
    rgb = bytes(((plan.color >> 16) & 0xFF, (plan.color >> 8) & 0xFF, plan.color & 0xFF))
    if pixels != (b"\x00" + rgb * width) * height:
        return "pixels are not the job's colour"
    try:
        tag = tag_of(json.loads(text.get("prompt", "")))
    except ValueError:
        tag = None
    if tag != plan.index:
        return f"embedded prompt has tag {tag}, expected {plan.index}"
    return None


@dataclass
class Execution:
    port: int
    prompt: str
    outcome: str
    files: list[str]
    started: int | None
    ended: int


def read_executions(
    workdir: Path,
) -> tuple[dict[int, list[Execution]], collections.Counter[str], dict[int, set[str]]]:
    """Per tag, every prompt a fake executed to its end; counts; per port, the prompts done."""
    by_tag: dict[int, list[Execution]] = collections.defaultdict(list)
    counts: collections.Counter[str] = collections.Counter()
    done: dict[int, set[str]] = collections.defaultdict(set)
    for path in sorted(workdir.glob("executions-*.jsonl")):
        starts: dict[str, int] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["e"] == "start":
                starts[record["prompt"]] = record["t"]
            elif record["e"] == "done":
                counts["exec_total"] += 1
                counts[f"exec_{record['outcome']}"] += 1
                done[record["port"]].add(record["prompt"])
                if record["tag"] is not None:
                    by_tag[record["tag"]].append(
                        Execution(
                            record["port"],
                            record["prompt"],
                            record["outcome"],
                            record["files"],
                            starts.get(record["prompt"]),
                            record["t"],
                        )
                    )
            elif record["e"] == "restart":
                counts["exec_dropped"] += len(record["dropped"])
    return by_tag, counts, done


def _hgetall_many(r: redis.Redis, keys: Sequence[str]) -> list[dict[bytes, bytes]]:
    out: list[dict[bytes, bytes]] = []
    for i in range(0, len(keys), 500):
        pipe = r.pipeline(transaction=False)
        for key in keys[i : i + 500]:
            pipe.hgetall(key)
        out.extend(pipe.execute())
    return out


def _within_window(at: float, kills: Sequence[float]) -> float | None:
    """Seconds between ``at`` and the first Redis crash after it, if inside the window."""
    for killed in kills:
        if 0 <= killed - at <= EVERYSEC_WINDOW_S:
            return killed - at
    return None


def _text(value: bytes | None) -> str:
    return value.decode() if value is not None else ""


def check_run(run: ChaosRun, report: ChaosReport, r: redis.Redis) -> None:
    """Every check of a finished run; fills ``report``.

    From Redis, for every job the submitter got an id for:
      1. it still exists (with everysec: unless its submit was acknowledged within
         EVERYSEC_WINDOW_S before a Redis crash: counted as an fsync loss, not a violation);
      2. it is terminal (completed, failed or cancelled), in exactly the matching ``ended``
         index and in no queue, delayed, waiting or running index and holds no lease;
      3. the fleet event stream holds exactly one terminal event for it, of its state;
      4. its timeline is consistent: every attempt closed, ``claims`` = attempts in the
         timeline, at most one attempt ``completed`` and, if so, it is the last one and the job
         is completed; ``lost`` = attempts that ended ``lost`` (+1 when it failed LeaseLost);
         ``infra`` = attempts that ended ``requeued`` (+1 when it failed at the cap of
         FLEETQ_MAX_INFRA_FAULTS);
      5. attempts were charged only for faults of the job: ``attempts`` = attempts that ended
         ``retrying`` + 1 if it failed for a job fault; an ``ok`` job has ``attempts`` 0 and
         never fails but by LeaseLost or the infrastructure cap; an ``error`` job fails
         RuntimeError and a ``hang`` job Timeout, after exactly ``max_attempts``, unless
         cancelled, LeaseLost or capped;
      6. a cancelled job was asked to be cancelled; an acknowledged ``cancelled`` ends
         cancelled, an acknowledged ``cancelling`` ends cancelled or completed;
      7. its priority is that of the last acknowledged bump (or of a bump whose reply was lost);
      8. a completed job's outputs are intact: a manifest, one blob per entry, each blob as
         long as the manifest says, ``image/png``, and a valid PNG (CRCs, inflatable, the
         job's width, height and colour, and the job's own tag in its embedded prompt).
    From the fakes' own logs (they survive restarts; cross-checked against each instance's
    final ``/history``):
      9. a completed job's completing attempt matches a successful execution of that job's
         prompt on the instance of that attempt's host and GPU, ending inside the attempt, that
         made the very files of the manifest (so no completion came from anywhere else);
     10. every charged attempt of an ``error`` job matches an execution that failed;
     11. no ``ok`` prompt failed and no ``error`` or ``hang`` prompt succeeded on a fake.
    From the supervisors' logs:
     12. at most one supervisor was told its completion of a job was accepted (logged
         ``completed``), and it is the host and GPU of the attempt Redis shows completed; none
         for a job that did not complete.
    And:
     13. a job a zombie claimed shows that one claim, ended ``lost`` (or ``cancelled``);
     14. no claim started on a GPU between its XID 79 and its clear (allowing the puller
         GATE_REACTION_MS to react; skipped when its supervisor restarted or was stopped, or
         Redis was down, meanwhile: the fault then reached the supervisor late).
     15. no job exists in Redis that the submitter did not get an id for.
    """
    o, keys, now_ms = run.o, Keys(run.settings.namespace), int(time.time() * 1000)
    by_tag, exec_counts, done_by_port = read_executions(run.fleet.workdir)
    report.counts.update(exec_counts)
    supervisor_logs = read_supervisor_logs(run.fleet.workdir)
    report.counts["supervisor_stale_refusals"] = supervisor_logs.refusals
    bad = report.violations.append

    def members(key: str) -> set[str]:
        return {m.decode() for m in cast("list[bytes]", r.zrange(key, 0, -1))}

    ended = {state: members(keys.ended(SERVICE, state)) for state in TERMINAL}
    active = {
        "queue": members(keys.queue(SERVICE)),
        "delayed": members(keys.delayed(SERVICE)),
        "waiting": members(keys.waiting(SERVICE)),
        "running": members(keys.running(SERVICE)),
        "leases": members(keys.leases),
    }
    for name, ids in active.items():
        if ids:
            bad(f"after the drain {len(ids)} job(s) left in {name}: {sorted(ids)[:5]}")
    terminal_events: dict[str, list[str]] = collections.defaultdict(list)
    events_complete = True
    last = "-"
    first_id: str | None = None
    while True:
        batch = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            r.xrange(keys.events, min=last, max="+", count=10_000),
        )
        if last != "-":
            batch = batch[1:]
        if not batch:
            break
        for entry_id, fields in batch:
            first_id = first_id or entry_id.decode()
            kind = _text(fields.get(b"type"))
            if kind in TERMINAL:
                terminal_events[_text(fields.get(b"job"))].append(kind)
            report.counts[f"events_{kind}"] += 1
        last = batch[-1][0].decode()
    info: dict[str, Any] = r.xinfo_stream(keys.events) if first_id else {}
    if first_id is None or info.get("entries-added") != r.xlen(keys.events):
        events_complete = False
        report.notes.append("the event stream was trimmed; check 3 skipped")

    accepted = run.accepted
    # Acknowledged writes inside the window before a crash: what everysec would have put at
    # risk had the machine (not only the process) died; the checks below prove their fate.
    report.counts["window_submits"] = sum(
        1 for a in accepted if _within_window(a.acked, run.redis_kills) is not None
    )
    report.counts["window_operator_writes"] = sum(
        1
        for requests in (*run.cancels.values(), *run.bumps.values())
        for q in requests
        if q.reply in ("cancelled", "cancelling", "applied")
        and _within_window(q.at, run.redis_kills) is not None
    )
    hashes = _hgetall_many(r, [keys.job(a.job_id) for a in accepted])
    report.counts["submitted"] = len(accepted)
    for kind in ("ok", "error", "hang"):
        report.counts[f"kind_{kind}"] = sum(1 for a in accepted if a.plan.kind == kind)
    completed: list[tuple[Accepted, dict[str, str]]] = []
    claims_seen: list[tuple[str, Any, int, str]] = []
    for a, raw in zip(accepted, hashes, strict=True):
        job = {k.decode(): v.decode() for k, v in raw.items()}
        plan, jid = a.plan, a.job_id
        where = f"job {jid} (#{plan.index}, {plan.kind})"
        if not job:
            report.counts["missing"] += 1
            age = _within_window(a.acked, run.redis_kills)
            if o.fsync == "everysec" and age is not None:
                report.fsync_losses.append(
                    f"submit of {jid} acknowledged {age:.2f} s before a Redis crash"
                )
            else:
                bad(f"{where}: lost (acknowledged submit, no trace in Redis)")
            continue
        state = job.get("state", "")
        report.counts[state] += 1
        if state not in TERMINAL:
            report.counts["not_terminal"] += 1
            bad(f"{where}: stuck in state {state!r} after the drain")
            continue
        homes = [s for s, ids in ended.items() if jid in ids]
        if homes != [state]:
            bad(f"{where}: state {state} but in ended indexes {homes}")
        for name, ids in active.items():
            if jid in ids:
                bad(f"{where}: terminal ({state}) but still in {name}")
        if events_complete and terminal_events.get(jid) != [state]:
            bad(f"{where}: terminal events {terminal_events.get(jid)} for state {state}")

        timeline = json.loads(job.get("timeline") or "[]")
        claims_seen.extend(
            (str(t.get("host")), t.get("gpu"), t.get("started_ms", 0), jid) for t in timeline
        )
        outcomes = [t.get("outcome") for t in timeline]
        error = json.loads(job.get("error") or "null") or {}
        etype, ekind = error.get("type"), error.get("kind")
        attempts, lost = int(job.get("attempts", 0)), int(job.get("lost", 0))
        claims = int(job.get("claims", 0))
        report.counts["claims"] += claims
        report.counts["lost_leases"] += lost
        report.counts["infra_requeues"] += outcomes.count("requeued")
        report.counts["retries"] += outcomes.count("retrying")
        report.counts["requeues"] += outcomes.count("requeued") + outcomes.count("lost")
        if state == "failed":
            report.counts[f"failed_{etype}"] += 1
        if any(t.get("ended_ms") is None for t in timeline):
            bad(f"{where}: an attempt was never closed: {outcomes}")
        if claims != len(timeline):
            bad(f"{where}: claims {claims} but {len(timeline)} attempts in the timeline")
        if outcomes.count("completed") > 1:
            bad(f"{where}: {outcomes.count('completed')} completed attempts: {outcomes}")
        if (state == "completed") != (bool(outcomes) and outcomes[-1] == "completed"):
            bad(f"{where}: state {state} but attempts ended {outcomes}")
        # 12: the supervisors that were told their completion was accepted: at most one, and
        # the one whose attempt Redis shows completed.
        last = timeline[-1] if timeline else {}
        owner = f"{last.get('host')}:{last.get('gpu')}" if state == "completed" else None
        logged = supervisor_logs.completions.get(jid, [])
        if len(logged) > 1 or any(w != owner for w, _ in logged):
            ages = [_within_window(t, run.redis_kills) for _, t in logged]
            if o.fsync == "everysec" and any(age is not None for age in ages):
                report.fsync_losses.append(f"completion of {jid} logged by a supervisor within "
                                           "the window before a Redis crash")  # fmt: skip
            else:
                bad(f"{where}: supervisors were told they completed it on "
                    f"{[w for w, _ in logged]}; Redis says {state}, by {owner}")  # fmt: skip
        elif state == "completed" and not logged:
            report.counts["completions_unlogged"] += 1
        elif logged:
            report.counts["completions_logged"] += 1
        lease_lost = state == "failed" and etype == "LeaseLost"
        # Failed for faults of GPUs or backends, after FLEETQ_MAX_INFRA_FAULTS of them.
        infra_capped = state == "failed" and ekind == "infra" and not lease_lost
        gave_up = lease_lost or infra_capped  # by design, not the job's fault: never charged
        if lost != outcomes.count("lost") + (1 if lease_lost else 0):
            bad(f"{where}: lost {lost} but attempts ended {outcomes}")
        if "infra" in job and int(job["infra"]) != outcomes.count("requeued") + infra_capped:
            bad(f"{where}: infra {job['infra']} but attempts ended {outcomes}")
        charged = outcomes.count("retrying") + (
            1 if state == "failed" and ekind in ("job", "final") else 0
        )
        if attempts != charged:
            bad(
                f"{where}: attempts {attempts}, but {charged} attempt(s) ended in a job fault "
                f"({outcomes}, error {etype})"
            )

        # What the job's kind allows (5 and 6).
        requests = run.cancels.get(jid, [])
        replies = {q.reply for q in requests}
        asked = bool(replies & {"cancelled", "cancelling", "unknown"})
        if state == "cancelled" and not asked:
            bad(f"{where}: cancelled, but nobody asked (cancel replies {sorted(replies)})")
        late = [q for q in requests if q.reply == "cancelled"]
        if late and state != "cancelled":
            age = _within_window(late[0].at, run.redis_kills)
            if o.fsync == "everysec" and age is not None:
                report.fsync_losses.append(
                    f"cancel of {jid} acknowledged {age:.2f} s before a Redis crash"
                )
            else:
                bad(f"{where}: cancel acknowledged 'cancelled' but the job ended {state}")
        if "cancelling" in replies and state not in ("cancelled", "completed"):
            bad(f"{where}: cancel acknowledged 'cancelling' but the job ended {state}")
        if plan.kind == "ok":
            if attempts != 0:
                bad(f"{where}: an ok job was charged {attempts} attempt(s): {outcomes} {etype}")
            if state == "failed" and not gave_up:
                bad(f"{where}: an ok job failed: {etype}: {error.get('message')}")
        else:
            if state == "completed":
                bad(f"{where}: a job that cannot succeed completed")
            expected = "RuntimeError" if plan.kind == "error" else "Timeout"
            if (
                state == "failed"
                and not gave_up
                and (etype != expected or attempts != o.max_attempts)
            ):
                bad(
                    f"{where}: failed {etype} after {attempts} attempt(s), expected {expected} "
                    f"after {o.max_attempts}"
                )
            if plan.kind == "error" and attempts:
                errors = sum(1 for e in by_tag.get(plan.index, []) if e.outcome == "error")
                if errors < attempts:
                    bad(
                        f"{where}: {attempts} attempt(s) charged but the fakes failed it "
                        f"{errors} time(s)"
                    )
        if state == "failed" and gave_up:
            why = "lease_lost" if lease_lost else "infra_capped"
            report.counts[f"failed_{why}_{plan.kind}"] += 1

        # 7: bumps.
        priority = int(job.get("priority", "0"))
        allowed = {plan.priority}
        for q in run.bumps.get(jid, []):
            if q.reply == "applied":
                allowed = {int(q.priority or 0)}
            elif q.reply == "unknown":
                allowed.add(int(q.priority or 0))
        if priority not in allowed:
            acked = [q for q in run.bumps.get(jid, []) if q.reply == "applied"]
            age = _within_window(acked[-1].at, run.redis_kills) if acked else None
            if o.fsync == "everysec" and age is not None:
                report.fsync_losses.append(
                    f"bump of {jid} acknowledged {age:.2f} s before a Redis crash"
                )
            else:
                bad(f"{where}: priority {priority}, expected one of {sorted(allowed)}")
        if jid in run.zombie_jobs:
            frozen = [t.get("outcome") for t in timeline if t.get("host") == ZOMBIE_HOST]
            age = _within_window(run.zombie_jobs[jid], run.redis_kills)
            if not frozen and o.fsync == "everysec" and age is not None:
                report.fsync_losses.append(f"zombie claim of {jid} acknowledged {age:.2f} s "
                                           "before a Redis crash")  # fmt: skip
            elif len(frozen) != 1 or frozen[0] not in ("lost", "cancelled"):
                bad(f"{where}: a zombie claimed it once, its attempts there ended {frozen}")
        if state == "completed":
            completed.append((a, job))

    # 8 and 9: outputs and the fakes' record of the completing attempt.
    for i in range(0, len(completed), 200):
        chunk = completed[i : i + 200]
        pipe = r.pipeline(transaction=False)
        for a, _ in chunk:
            pipe.hgetall(keys.outputs(a.job_id))
        blobs_list = pipe.execute()
        for (a, job), blobs in zip(chunk, blobs_list, strict=True):
            _check_outputs(run, report, a, job, blobs, by_tag, now_ms)

    # 11: the fakes' logs against the workload, and against each instance's own /history.
    plans = {p.index: p for p in run.plans}
    for tag, executions in by_tag.items():
        known_plan = plans.get(tag)
        if known_plan is None:
            bad(f"a fake ran a prompt with unknown tag {tag}")
            continue
        for e in executions:
            if known_plan.kind == "ok" and e.outcome == "error":
                bad(f"#{tag} (ok) failed on port {e.port}: prompt {e.prompt}")
            if known_plan.kind != "ok" and e.outcome == "success":
                bad(f"#{tag} ({known_plan.kind}) succeeded on port {e.port}: prompt {e.prompt}")
    for port, history in run.history.items():
        missing = set(history) - done_by_port.get(port, set())
        if missing:
            bad(
                f"port {port}: {len(missing)} prompt(s) in /history missing from the execution "
                f"log: {sorted(missing)[:3]}"
            )

    # 14: no claim on a GPU between its XID and its clear (after the gate's reaction time),
    # unless its supervisor restarted (a fresh process forgets injected faults), or was
    # stopped or Redis was down (the fault reached the supervisor late: after a SIGCONT the
    # pullers may claim before the control task reads the fault).
    for k, gpu, sent, cleared in run.xid_windows:
        host = run.fleet.host(k)
        restarted = any(sent - 1 <= t <= cleared for t in run.fleet.started_at[k])
        outage = any(down <= cleared and up + 2 >= sent for down, up in run.redis_outages)
        paused = any(p == k and a <= cleared and b + 2 >= sent for p, a, b in run.pauses)
        if restarted or outage or paused:
            report.counts["xid_windows_skipped"] += 1
            continue
        begin, end = int(sent * 1000) + GATE_REACTION_MS, int(cleared * 1000)
        for c_host, c_gpu, started, jid in claims_seen:
            if c_host == host and c_gpu == gpu and begin < started < end:
                bad(
                    f"job {jid} claimed on {host}:{gpu} {started - begin + GATE_REACTION_MS} ms "
                    "after an XID 79 there, before the GPU was cleared"
                )
        report.counts["xid_windows_checked"] += 1

    # No job that nobody submitted.
    known = {a.job_id for a in accepted}
    every = set().union(*ended.values(), *active.values())
    strays = every - known
    if strays:
        bad(
            f"{len(strays)} job(s) in Redis that the submitter never got an id for: "
            f"{sorted(strays)[:5]}"
        )


def check_keys_after_retention(settings: Settings, report: ChaosReport, r: redis.Redis) -> None:
    """The last check (it deletes data): once retention passed, nothing is left but live jobs
    and fixed keys.

    Every key with a time to live is taken as expired (the job retention, the output TTL, the
    leases, the host records: all run out in time), one reaper pass with a retention of one
    second prunes the ``ended`` indexes, then :func:`key_audit.audit_keys` lists anything else
    (a key without a TTL that belongs to no live job, an index entry of a job that is gone).
    """
    keys = Keys(settings.namespace)
    live = live_jobs(r, keys)
    expired = 0
    for key in list(r.scan_iter(match=keys.prefix + "*", count=1000)):
        if cast(int, r.pttl(key)) > 0:
            expired += r.delete(key)
    # The reaper prunes what finished more than the retention (1 s here) ago, by Redis's clock.
    newest = max(
        (
            float(score)
            for key in r.scan_iter(match=keys.ended("*", "*"), count=1000)
            for _, score in cast("list[tuple[bytes, float]]", r.zrevrange(key, 0, 0, True))
        ),
        default=0.0,
    )
    seconds, micros = cast("tuple[int, int]", r.time())
    wait_s = (newest + 1_100 - (seconds * 1000 + micros // 1000)) / 1000
    if wait_s > 0:
        time.sleep(wait_s)  # the last job's one-second retention runs out
    store = SyncStore(settings.with_overrides(retention_s=1))
    try:
        outcome = store.run(store.protocol.reap("chaos-audit", lock_ms=10, gap_ms=10**9))
    finally:
        store.close()
    leftovers = audit_keys(r, keys, live)
    report.counts.update(
        audit_expired_keys=expired,
        audit_pruned=outcome.pruned,
        audit_live_jobs=len(live),
        audit_leftovers=len(leftovers),
    )
    for problem in leftovers:
        report.violations.append(f"key audit: {problem}")


def _check_outputs(
    run: ChaosRun,
    report: ChaosReport,
    a: Accepted,
    job: dict[str, str],
    blobs: dict[bytes, bytes],
    by_tag: Mapping[int, list[Execution]],
    now_ms: int,
) -> None:
    bad = report.violations.append
    plan, where = a.plan, f"job {a.job_id} (#{a.plan.index}, {a.plan.kind})"
    manifest = json.loads(job.get("outputs") or "[]")
    if not manifest:
        bad(f"{where}: completed without an output manifest")
        return
    if not blobs:
        expires = int(job.get("finished_ms", "0")) + run.settings.output_ttl_s * 1000
        if now_ms > expires:
            report.counts["outputs_expired"] += 1
        else:
            bad(f"{where}: outputs missing before their TTL")
        return
    if len(blobs) != len(manifest):
        bad(f"{where}: {len(blobs)} blobs for {len(manifest)} manifest entries")
    for i, entry in enumerate(manifest):
        data = blobs.get(str(i).encode())
        if data is None:
            bad(f"{where}: output {i} ({entry.get('filename')}) has no bytes")
            continue
        if len(data) != entry.get("size"):
            bad(f"{where}: output {i} is {len(data)} bytes, the manifest says {entry.get('size')}")
        if entry.get("content_type") != "image/png":
            bad(f"{where}: output {i} has content type {entry.get('content_type')!r}")
        problem = verify_png(data, plan)
        if problem:
            bad(f"{where}: output {i} ({entry.get('filename')}) is not intact: {problem}")
        else:
            report.counts["outputs_verified"] += 1
    # 9: the attempt that completed ran on a fake that really made these files.
    last = json.loads(job.get("timeline") or "[]")[-1]
    located = run.fleet.where_port(str(last.get("host")), last.get("gpu"))
    if located is None:
        bad(f"{where}: completed by {last.get('host')}:{last.get('gpu')}, which has no backend")
        return
    files = {str(entry.get("filename")) for entry in manifest}
    begin, end = last["started_ms"] - CLOCK_SLACK_MS, last["ended_ms"] + CLOCK_SLACK_MS
    matches = [
        e
        for e in by_tag.get(plan.index, [])
        if e.port == located
        and e.outcome == "success"
        and begin <= e.ended <= end
        and files <= set(e.files)
    ]
    if not matches:
        seen = [
            (e.port, e.outcome, e.ended - last["started_ms"]) for e in by_tag.get(plan.index, [])
        ]
        bad(
            f"{where}: completed by {last.get('host')}:{last.get('gpu')} (port {located}) but no "
            f"execution there made {sorted(files)} during the attempt; executions {seen}"
        )


@dataclass
class SupervisorLogs:
    #: Puller runs that ended ``lost``: a renew or a final write refused as stale.
    refusals: int = 0
    #: job id -> (host:gpu, time) of each "job ... completed on ..." line: a supervisor whose
    #: completion Redis accepted.
    completions: dict[str, list[tuple[str, float]]] = field(default_factory=dict)


_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO supervisor\.execution: "
    r"job ([0-9a-f]+) (completed|lost) on (\S+) after "
)


def read_supervisor_logs(workdir: Path) -> SupervisorLogs:
    logs = SupervisorLogs()
    for path in sorted(workdir.glob("supervisor-*.log")):
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                match = _LOG_LINE.match(line)
                if match is None:
                    continue
                stamp, millis, job_id, outcome, where = match.groups()
                if outcome == "lost":
                    logs.refusals += 1
                    continue
                at = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
                logs.completions.setdefault(job_id, []).append((where, at))
    return logs


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
