"""Supervisor idle overhead: one ``fleetq supervisor`` with 8 simulated GPUs and an empty queue.

One run starts, each as its own process (own session, ended by process group at the end):

- a private ``redis-server`` on a free loopback port (AOF and RDB off) that only this supervisor
  talks to (plus the benchmark's few INFO calls);
- 8 fake ComfyUI instances on consecutive ports, in one separate process (this script with
  ``--serve-fakes``; the fakes count the HTTP requests they get);
- ``fleetq supervisor --simulate-gpus 8 --backend comfyui=http://127.0.0.1:{port:BASE}``.

After the supervisor publishes all its GPUs idle and a warm-up, it measures over a window
(default 60 s): the supervisor's CPU (``psutil`` user + system time, as a share of one core), its
RSS (sampled every second), the Redis commands executed (``INFO commandstats`` and
``total_commands_processed`` deltas, nothing subtracted), and the HTTP requests the fakes got.
A short ``MONITOR`` window afterwards splits the commands into those the supervisor sent (round
trips) and those run inside its Lua scripts.

Usage (from the repository root)::

    .venv/bin/python scripts/bench_supervisor_idle.py            # full run, about 2 minutes
    .venv/bin/python scripts/bench_supervisor_idle.py --quick    # smoke run, about 15 s
    .venv/bin/python scripts/bench_supervisor_idle.py --write    # also update docs/BENCHMARKS.md
    .venv/bin/python scripts/bench_supervisor_idle.py --supervisor-src /tmp/patched-checkout

``--supervisor-src`` runs the supervisor (and only it) from another source tree, to measure a
patch without touching this checkout. The markdown goes to stdout; ``--write`` replaces the
section "Supervisor idle overhead" of docs/BENCHMARKS.md (other sections are kept).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT, HERE):  # run as a script from a checkout (HERE holds the fleetbench harness)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import psutil  # noqa: E402
import redis  # noqa: E402
from fleetbench.docs import command_line, write_doc  # noqa: E402
from fleetbench.machine import cpu_seconds, machine_facts  # noqa: E402
from fleetbench.paths import BENCHMARKS_DOC  # noqa: E402
from fleetbench.processes import (  # noqa: E402
    Children,
    children_in_tmp,
    consecutive_free_ports,
    python_env,
    start_redis,
    wait_for_port,
)

from fleetq import Client, Settings  # noqa: E402
from fleetq.records import PullerStatus  # noqa: E402

DOC = BENCHMARKS_DOC
HEADING = "## Supervisor idle overhead (scripts/bench_supervisor_idle.py)"
NAMESPACE = "benchidle"
HOST_ID = "bench-idle"
COUNT_PATH = "/bench/requests"

# Targets from the issue.
CPU_TARGET_PCT = 1.0
RSS_TARGET_MB = 80.0
COMMANDS_TARGET_PER_GPU = 10.0


@dataclass(frozen=True)
class Sizes:
    gpus: int
    warmup_s: float
    window_s: float
    monitor_s: float


FULL = Sizes(gpus=8, warmup_s=15.0, window_s=60.0, monitor_s=10.0)
QUICK = Sizes(gpus=8, warmup_s=3.0, window_s=5.0, monitor_s=2.0)


# -- fake ComfyUI instances that count the requests they get --------------------------------------


def serve_counting_fakes(port: int, count: int) -> None:
    """``--serve-fakes``: ``count`` fake ComfyUI instances on consecutive ports; ``GET
    /bench/requests`` on any of them returns the requests of all of them, by method and path."""
    from aiohttp import web

    from supervisor.sim.comfyui import FakeComfyUI
    from supervisor.sim.group import run_until_signalled, start_group

    counts: collections.Counter[str] = collections.Counter()

    @web.middleware
    async def counting(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == COUNT_PATH:
            return web.json_response(dict(counts))
        counts[f"{request.method} {request.path}"] += 1
        response: web.StreamResponse = await handler(request)
        return response

    class CountingComfyUI(FakeComfyUI):
        def _add_routes(self, app: web.Application) -> None:
            super()._add_routes(app)
            app.middlewares.append(counting)

    async def start() -> Any:
        return await start_group(
            lambda index, p: CountingComfyUI("127.0.0.1", p, index=index), port, count
        )

    run_until_signalled(start)


def http_counts(port: int) -> collections.Counter[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{COUNT_PATH}", timeout=5) as answer:
        return collections.Counter(json.loads(answer.read()))


# -- measuring ------------------------------------------------------------------------------------


def command_calls(info: dict[str, Any]) -> dict[str, int]:
    """``INFO commandstats`` as {command: calls} (``cmdstat_`` prefix dropped)."""
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()}


def monitor_split(port: int, seconds: float) -> collections.Counter[tuple[str, str]]:
    """Commands seen by ``MONITOR`` for ``seconds``, by (origin, command); origin is ``lua`` for
    commands run inside scripts, ``client`` for commands sent over a connection.

    A raw socket: each MONITOR line is ``+<time> [<db> <client>|lua] "<command>" ...``."""
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"MONITOR\r\n")
        buffer = b""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\r\n")
            for line in lines:
                if not line.startswith(b"+") or b"] " not in line:
                    continue  # the +OK of MONITOR itself
                where, _, rest = line.partition(b"] ")
                name = rest.split(b" ", 1)[0].strip(b'"').decode(errors="replace").lower()
                origin = "lua" if where.endswith(b"lua") else "client"
                seen[(origin, name)] += 1
    return seen


@dataclass
class Result:
    sizes: Sizes
    command: str
    facts: dict[str, str] = field(default_factory=dict)
    window_s: float = 0.0
    cpu_pct: float = 0.0
    rss_mb_end: float = 0.0
    rss_mb_max: float = 0.0
    threads: int = 0
    fake_cpu_pct: float = 0.0
    redis_cpu_pct: float = 0.0
    total_commands: int = 0
    commandstats: dict[str, int] = field(default_factory=dict)
    http: dict[str, int] = field(default_factory=dict)
    monitor_s: float = 0.0
    monitor: dict[tuple[str, str], int] = field(default_factory=dict)
    src: str = ""

    # -- derived ----------------------------------------------------------------------------

    @property
    def commands_per_s(self) -> float:
        return self.total_commands / self.window_s

    @property
    def commands_per_gpu(self) -> float:
        return self.commands_per_s / self.sizes.gpus

    def sent_share(self) -> float | None:
        """Share of all executed commands that the supervisor sent itself (from MONITOR)."""
        total = sum(self.monitor.values())
        if not total:
            return None
        return sum(n for (origin, _), n in self.monitor.items() if origin == "client") / total

    def sent_breakdown(self) -> str:
        """Which commands the supervisor sends per idle GPU and second, and how many commands
        each script call runs inside (from MONITOR)."""
        if not self.monitor_s:
            return ""
        g = self.sizes.gpus
        sent = {name: n for (origin, name), n in self.monitor.items() if origin == "client"}
        lua = sum(n for (origin, _), n in self.monitor.items() if origin == "lua")
        parts = [
            f"{n / self.monitor_s / g:.2f} `{name.upper()}`"
            for name, n in sorted(sent.items(), key=lambda kv: -kv[1])
        ]
        scripts = sent.get("evalsha", 0) + sent.get("eval", 0)
        inside = f" Each script call runs {lua / scripts:.1f} commands inside on average." if (
            scripts
        ) else ""  # fmt: skip
        return "Sent per idle GPU and second: " + ", ".join(parts) + "." + inside

    def targets(self) -> list[tuple[str, str, str, bool]]:
        return [
            ("supervisor CPU, share of one core", f"<= {CPU_TARGET_PCT:g}%",
             f"{self.cpu_pct:.2f}%", self.cpu_pct <= CPU_TARGET_PCT),
            ("supervisor RSS (largest sample)", f"<= {RSS_TARGET_MB:g} MB",
             f"{self.rss_mb_max:.1f} MB", self.rss_mb_max <= RSS_TARGET_MB),
            ("Redis commands/s per idle GPU (all executed)",
             f"<= {COMMANDS_TARGET_PER_GPU:g}", f"{self.commands_per_gpu:.1f}",
             self.commands_per_gpu <= COMMANDS_TARGET_PER_GPU),
        ]  # fmt: skip

    # -- report -----------------------------------------------------------------------------

    def markdown(self) -> str:
        s, f, g = self.sizes, self.facts, self.sizes.gpus
        per_s = self.window_s
        lines = [
            HEADING,
            "",
            f"Measured {f['date']} on {f['cpus']} CPUs ({f['cpu']}), {f['os']}, Python "
            f"{f['python']}, redis-server {f['redis_server']} (private, loopback, AOF and RDB "
            f"off), redis-py {f['redis_py']}, aiohttp {f['aiohttp']}, fleetq at commit "
            f"{f['commit']}. Load average (1 min) {f['load_before']} at the start, "
            f"{f.get('load_after', '?')} at the end, run time {f.get('run_s', '?')} s: the "
            "machine is shared with other engineers, which moves the CPU share a little (the "
            "command and request counts do not depend on it).",
            "",
            "Reproduce (from the repository root):",
            "",
            "```sh",
            self.command,
            "```",
            "",
            f"One supervisor process (`fleetq supervisor --simulate-gpus {g} --backend "
            "comfyui=http://127.0.0.1:{port:BASE}`, default settings: `claim_block_s` 5 s, "
            f"publisher and reaper every 1 s) against {g} fake ComfyUI instances served by one "
            "separate process, and a private redis-server that only this supervisor talks to, "
            "with an empty queue. After every GPU is published idle and a warm-up of "
            f"{s.warmup_s:g} s, the window of {self.window_s:.0f} s measures the supervisor "
            "process's user + system CPU time (`psutil`), its RSS (sampled every second), "
            "the `INFO commandstats` and `total_commands_processed` deltas of Redis (nothing "
            "subtracted: the publisher, the reaper and the control reader count too, and so do "
            "the benchmark's own 2 INFO calls), and the HTTP requests the fakes counted."
            + (f" Supervisor source: `{self.src}`." if self.src else ""),
            "",
            "### Targets",
            "",
            "| measure | target | measured | result |",
            "|---|---|---:|---|",
        ]
        for name, target, measured, ok in self.targets():
            lines.append(f"| {name} | {target} | {measured} | {'met' if ok else 'missed'} |")
        share = self.sent_share()
        sent_line = (
            f"{self.commands_per_gpu * share:.1f} of them per idle GPU are sent by the "
            f"supervisor (round trips), {self.commands_per_gpu * (1 - share):.1f} run inside "
            f"its Lua scripts (split measured with MONITOR over {self.monitor_s:.0f} s). "
            + self.sent_breakdown()
            if share is not None
            else ""
        )
        lines += [
            "",
            f"Redis executed {self.total_commands:,} commands in {self.window_s:.1f} s: "
            f"{self.commands_per_s:.1f}/s in all, {self.commands_per_gpu:.1f}/s per idle GPU "
            f"(`total_commands_processed` counts commands run inside Lua scripts too). "
            + sent_line,
            "",
            "### Redis commands by command",
            "",
            "From `INFO commandstats` over the window; the last two columns from MONITOR "
            "afterwards (per second, all GPUs): sent over a connection, or run inside a script.",
            "",
            "| command | calls/s | per idle GPU | share | sent /s (MONITOR) "
            "| in Lua /s (MONITOR) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        total = sum(self.commandstats.values()) or 1
        for name, calls in sorted(self.commandstats.items(), key=lambda kv: -kv[1]):
            if calls == 0:
                continue
            sent = self.monitor.get(("client", name), 0) / self.monitor_s if self.monitor_s else 0
            lua = self.monitor.get(("lua", name), 0) / self.monitor_s if self.monitor_s else 0
            lines.append(
                f"| `{name}` | {calls / per_s:.2f} | {calls / per_s / g:.2f} | "
                f"{100 * calls / total:.0f}% | {sent:.2f} | {lua:.2f} |"
            )
        lines += [
            "",
            "### HTTP requests to the backends",
            "",
            "| request | per second | per idle GPU |",
            "|---|---:|---:|",
        ]
        for name, n in sorted(self.http.items(), key=lambda kv: -kv[1]):
            if n:
                lines.append(f"| `{name}` | {n / per_s:.2f} | {n / per_s / g:.2f} |")
        if not any(self.http.values()):
            lines.append("| (none) | 0 | 0 |")
        lines += [
            "",
            "### Other processes over the same window",
            "",
            "| process | CPU, share of one core |",
            "|---|---:|",
            f"| supervisor ({self.threads} threads at the end; RSS {self.rss_mb_end:.1f} MB at "
            f"the end) | {self.cpu_pct:.2f}% |",
            f"| {g} fake ComfyUI instances (one process; answering the probes) | "
            f"{self.fake_cpu_pct:.2f}% |",
            f"| redis-server | {self.redis_cpu_pct:.2f}% |",
            "",
        ]
        return "\n".join(lines)


def wait_idle(settings: Settings, gpus: int, timeout_s: float, children: Children) -> None:
    """Until the supervisor has published all its GPUs, each idle (not blocked)."""
    with Client(settings) as client:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            children.check_alive()
            for host in client.fleet().hosts:
                if (
                    host.host == HOST_ID
                    and host.online
                    and len(host.gpus) == gpus
                    and all(g.status is PullerStatus.IDLE for g in host.gpus)
                ):
                    return
            time.sleep(0.2)  # the publisher writes once a second; nothing to block on
    raise RuntimeError(f"the supervisor did not publish {gpus} idle GPUs in {timeout_s:.0f} s")


def run(sizes: Sizes, src: Path, result: Result, say: Callable[[str], None]) -> None:
    with children_in_tmp("fleetq-bench-idle-", say) as children:
        redis_port = start_redis(children, children.log_dir)
        result.facts = machine_facts(redis_port)
        url = f"redis://127.0.0.1:{redis_port}/0"
        base = consecutive_free_ports(sizes.gpus)
        fakes = children.start(
            "fake-comfyui",
            [sys.executable, str(Path(__file__).resolve()), "--serve-fakes", str(base),
             str(sizes.gpus)],
            env=python_env(ROOT),
        )  # fmt: skip
        for i in range(sizes.gpus):
            wait_for_port(base + i, 30, children)
        supervisor = children.start(
            "supervisor",
            [sys.executable, "-m", "fleetq.cli.main", "--redis", url, "--namespace", NAMESPACE,
             "supervisor", "--simulate-gpus", str(sizes.gpus), "--host-id", HOST_ID,
             "--backend", f"comfyui=http://127.0.0.1:{{port:{base}}}",
             "--log-level", "WARNING"],
            env=python_env(src), cwd=src,
        )  # fmt: skip
        say(f"supervisor pid {supervisor.pid}, fakes on :{base}.., redis on :{redis_port}")
        wait_idle(Settings(redis_url=url, namespace=NAMESPACE), sizes.gpus, 60, children)
        say(f"all {sizes.gpus} GPUs idle; warm-up {sizes.warmup_s:g} s")
        time.sleep(sizes.warmup_s)
        children.check_alive()

        sup, fake = psutil.Process(supervisor.pid), psutil.Process(fakes.pid)
        redis_proc = psutil.Process(children.processes[0][1].pid)
        conn = redis.Redis(port=redis_port)
        say(f"measuring for {sizes.window_s:g} s")
        cpu0 = [cpu_seconds(p) for p in (sup, fake, redis_proc)]
        http0 = http_counts(base)
        stats0 = command_calls(conn.info("commandstats"))
        total0 = int(conn.info("stats")["total_commands_processed"])
        t0 = time.monotonic()
        rss: list[float] = []
        deadline = t0 + sizes.window_s
        while True:
            rss.append(sup.memory_info().rss / 1e6)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(1.0, left))  # the sampling period of RSS
        stats1 = command_calls(conn.info("commandstats"))
        total1 = int(conn.info("stats")["total_commands_processed"])
        cpu1 = [cpu_seconds(p) for p in (sup, fake, redis_proc)]
        http1 = http_counts(base)
        window = time.monotonic() - t0
        conn.close()
        children.check_alive()

        result.window_s = window
        pct = [100 * (b - a) / window for a, b in zip(cpu0, cpu1, strict=True)]
        result.cpu_pct, result.fake_cpu_pct, result.redis_cpu_pct = pct
        result.rss_mb_end, result.rss_mb_max = rss[-1], max(rss)
        result.threads = sup.num_threads()
        result.total_commands = total1 - total0
        result.commandstats = {k: v - stats0.get(k, 0) for k, v in stats1.items()}
        result.http = {k: v - http0.get(k, 0) for k, v in http1.items()}
        if sizes.monitor_s > 0:
            say(f"MONITOR for {sizes.monitor_s:g} s")
            result.monitor = dict(monitor_split(redis_port, sizes.monitor_s))
            result.monitor_s = sizes.monitor_s
        children.check_alive()


# -- command line ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="short smoke run (about 15 s)")
    p.add_argument("--gpus", type=int, help="simulated GPUs (default 8)")
    p.add_argument("--warmup", type=float, help="seconds after all GPUs are idle (default 15)")
    p.add_argument("--window", type=float, help="measured seconds (default 60)")
    p.add_argument("--monitor", type=float, help="seconds of MONITOR afterwards (default 10)")
    p.add_argument(
        "--supervisor-src",
        type=Path,
        metavar="DIR",
        help="run the supervisor from this source tree (default: this checkout)",
    )
    p.add_argument("--write", action="store_true", help=f"update {DOC.relative_to(ROOT)}")
    p.add_argument("--serve-fakes", nargs=2, type=int, metavar=("PORT", "COUNT"),
                   help=argparse.SUPPRESS)  # fmt: skip
    return p.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.serve_fakes:
        serve_counting_fakes(*args.serve_fakes)
        return 0
    sizes = QUICK if args.quick else FULL
    overrides = {"gpus": args.gpus, "warmup_s": args.warmup, "window_s": args.window,
                 "monitor_s": args.monitor}  # fmt: skip
    sizes = Sizes(**{**sizes.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    src = (args.supervisor_src or ROOT).resolve()

    def say(message: str) -> None:
        print(f"[bench-idle] {message}", file=sys.stderr, flush=True)

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    result = Result(sizes, command_line(argv, Path(__file__)), src="" if src == ROOT else str(src))
    started = time.perf_counter()
    run(sizes, src, result, say)
    result.facts["load_after"] = f"{os.getloadavg()[0]:.1f}"
    result.facts["run_s"] = f"{time.perf_counter() - started:.0f}"
    section = result.markdown()
    print(section)
    if args.write:
        write_doc(section, HEADING)
        say(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
