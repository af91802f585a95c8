"""Dashboard benchmark: the CPU cost of one refresh does not grow with the queue.

Starts a private ``redis-server`` (:class:`fleetq.demo.embedded.RedisServer`), and for each queue
size (default 1,000 and 100,000 queued jobs) seeds a fresh namespace with that many queued jobs (the
submit script in pipelines), 200 running jobs (claimed, with progress) and 240 GPUs on 30 hosts
(published as supervisors do). Then, over ``--refreshes`` refreshes in which every GPU reading,
the running jobs' progress and a few priorities change, it measures with ``time.process_time``:

* **poller**: the poller's read + snapshot build (``Poller.read_once``: stats, one page of jobs,
  the fleet records, building the immutable snapshot);
* **widgets**: the app's update from one snapshot, headless under ``App.run_test()``: the three
  tables updated in place, plus the frame render that follows (the measuring window includes
  50 ms of idle so the render happens inside it; idle time costs no CPU);
* **sum**: the two together, refresh by refresh (what the target is set on);

and the RSS (psutil) of the measuring process after the run: each size is measured in a fresh
process running the app (the parent seeds Redis), so the RSS is the dashboard's own. The
simulated fleet runs in the parent, as supervisors run on their own machines: its calls and its
garbage are not charged to the dashboard. The poller and the widgets take turns as in the app:
the fleet moves on, then read, apply, draw, once per simulated second.
Prints a markdown table.

The first ``--warmup`` refreshes (default 60) are reported apart: the render caches fill then,
and the garbage collector runs far more often than later. Beside the figures, the machine's own
noise: a fixed workload timed at the same cadence (on a shared VM the CPU is slower after each
idle pause, which alone puts a p95 well above the median).

With ``--against CHECKOUT`` it measures that checkout's dashboard too (by that checkout's copy
of this script), on the same fleet, turn about with this one refresh by refresh: on a shared
machine whose speed drifts by half within minutes, only a comparison made this way is fair.

    .venv/bin/python scripts/bench_tui.py                  # 1,000 vs 100,000 queued, ~3 minutes
    .venv/bin/python scripts/bench_tui.py --sizes 1000 --refreshes 10 --warmup 5   # smoke run
    .venv/bin/python scripts/bench_tui.py --sizes 100000 --against ../fleetq-main   # A/B
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

import psutil  # type: ignore[import-untyped]  # noqa: E402
import textual  # noqa: E402

from fleetq import AsyncClient, Client, Settings  # noqa: E402
from fleetq.demo.embedded import RedisServer  # noqa: E402
from fleetq.model import ClaimedJob  # noqa: E402
from fleetq.records import GpuHealth, GpuJobRecord, GpuRecord, HostRecord  # noqa: E402
from fleetq.scripts import script_source  # noqa: E402
from fleetq.store import new_job_id  # noqa: E402
from fleetq.validation import build_spec  # noqa: E402
from fleetq.worker import WorkerQueue  # noqa: E402
from tui.app import FleetqApp, create_app  # noqa: E402
from tui.widgets.poller import Poller  # noqa: E402

HOSTS = 30
GPUS_PER_HOST = 8
RUNNING = 200
TARGET_CPU_MS = 50.0
TARGET_RSS_MB = 200.0

WORKFLOW = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 30, "cfg": 7.0,
          "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
          "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
          "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple",
          "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024,
          "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dawn, film",
          "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, lowres", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "fleetq", "images": ["8", 0]}},
}  # fmt: skip


@dataclass
class Result:
    queued: int
    gpus: int
    seed_s: float
    poller_ms: list[float]
    read_wall_ms: list[float]
    widget_first_ms: float
    widget_ms: list[float]
    rss_mb: float
    #: CPU ms the garbage collector took within each refresh (part of the sum).
    gc_ms: list[float]
    #: Refreshes run before the measured ones (render caches filling), and their sums.
    warmup_sums: list[float]
    #: The machine's own noise: CPU ms of one fixed workload, repeated at the same cadence.
    noise_ms: list[float]
    #: Jobs seeded (queued + running + those the churn claims during the run).
    seeded: int = 0


def fixed_workload() -> None:
    """About 10 ms of pure Python (JSON, a sort, a dict build), the same every time."""
    rows = json.loads(_NOISE_JSON)
    ordered = sorted(rows, key=lambda row: (-row["b"], row["a"]))
    {row["a"]: row for row in ordered}


_NOISE_JSON = json.dumps([{"a": i, "b": i % 97, "c": {"x": 1.5}} for i in range(6000)])


async def machine_noise(samples: int) -> list[float]:
    """CPU ms of :func:`fixed_workload`, each run after 50 ms idle as a refresh is: what the
    machine alone adds between a median and a p95 (a shared VM's CPU slows after idling)."""
    out = []
    for _ in range(samples):
        await asyncio.sleep(0.05)
        c0 = time.process_time()
        fixed_workload()
        out.append(ms(time.process_time() - c0))
    return out


def seed_queued(client: Client, count: int, batch: int = 5_000) -> None:
    """Queue ``count`` jobs fast: the submit script in pipelines."""
    store = client.store
    script = store.redis.register_script(script_source("submit"))
    rng = random.Random(1)
    done = 0
    while done < count:
        n = min(batch, count - done)
        pipe = store.redis.pipeline(transaction=False)
        for _ in range(n):
            # A few priority bands, as a real queue has.
            priority = rng.choice((0, 0, 0, 0, 5, 10, -5))
            spec = build_spec(WORKFLOW, client.settings, service="comfyui", priority=priority)
            call = store.protocol.submit(spec, new_job_id())
            script(keys=call.keys, args=call.args, client=pipe)
        replies = pipe.execute()
        if sum(1 for r in replies if r[0] == b"created") != n:
            raise RuntimeError("seeding: some submits were not created")
        done += n


class Readings:
    """Per-GPU readings that drift like real ones: busy GPUs move every second, idle ones
    barely (a realistic refresh, not random noise in every cell)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.state: dict[str, dict[str, Any]] = {}

    def sample(self, target: str, busy: bool) -> dict[str, Any]:
        rng = self.rng
        r = self.state.get(target)
        if r is None:
            r = self.state[target] = {
                "utilization_gpu_pct": 0, "utilization_memory_pct": 0, "memory_used_mb": 600,
                "memory_total_mb": 24_564, "temperature_c": 40, "temperature_slowdown_c": 90,
                "power_w": 35.0, "power_limit_w": 450.0, "fan_pct": 30, "sm_clock_mhz": 210,
            }  # fmt: skip
        if busy:
            util = r["utilization_gpu_pct"] or 90
            r["utilization_gpu_pct"] = max(60, min(100, util + rng.randint(-8, 8)))
            r["memory_used_mb"] = 18_000 + rng.randint(0, 40) * 10
            r["power_w"] = float(rng.randint(300, 440))
            r["temperature_c"] = max(55, min(83, r["temperature_c"] + rng.choice((-1, 0, 0, 1, 1))))
            r["sm_clock_mhz"] = 2520
        else:
            r["utilization_gpu_pct"] = 0
            r["power_w"] = 35.0 + rng.choice((0, 0, 0, 1))
            r["temperature_c"] = max(35, r["temperature_c"] - rng.choice((0, 0, 1)))
        return dict(r)


def gpu_records(
    host: str, readings: Readings, jobs: dict[str, ClaimedJob], progress: dict[str, float]
) -> list[GpuRecord]:
    out = []
    for index in range(GPUS_PER_HOST):
        target = f"{host}:{index}"
        job = jobs.get(target)
        out.append(GpuRecord(
            index=index, name="NVIDIA RTX 4090", uuid=f"GPU-{host}-{index}",
            health=GpuHealth.HEALTHY, services=("comfyui", "a1111"),
            job=None if job is None else GpuJobRecord(
                job.id, job.service, progress[job.id], "KSampler", 0),
            readings=readings.sample(target, busy=job is not None),
        ))  # fmt: skip
    return out


class Fleet:
    """Stands in for 30 supervisors: publishes readings and moves the running jobs along."""

    def __init__(self, settings: Settings, churn: int = 0) -> None:
        self.settings = settings
        #: Jobs that finish each second (each GPU then claims the next queued job).
        self.churn = churn
        self.client = AsyncClient(settings)
        self.worker = WorkerQueue(settings)
        self.rng = random.Random(2)
        self.readings = Readings(self.rng)
        self.running: dict[str, ClaimedJob] = {}
        self.progress: dict[str, float] = {}
        self.hosts = [f"gpu-node-{i:02d}" for i in range(1, HOSTS + 1)]

    async def start(self) -> None:
        targets = [f"{h}:{g}" for h in self.hosts for g in range(GPUS_PER_HOST)][:RUNNING]
        for target in targets:
            host, _, gpu = target.partition(":")
            outcome = await self.worker.try_claim(["comfyui"], host, int(gpu))
            assert outcome.job is not None
            self.running[target] = outcome.job
            self.progress[outcome.job.id] = self.rng.random()
        await self.tick()

    async def tick(self) -> None:
        """One second of a busy fleet: new readings, progress, a couple of bumps."""
        for job_id, done in self.progress.items():  # a 30-step job: a step every second
            self.progress[job_id] = done + 1 / 30 if done < 0.96 else 0.0
        for h in self.hosts:
            records = gpu_records(h, self.readings, self.running, self.progress)
            await self.worker.publish_host(h, HostRecord(version="bench"), records, 10_000)
        jobs = list(self.running.values())
        for i in range(0, len(jobs), 50):  # in chunks: the connection pool is bounded
            await asyncio.gather(*(
                self.worker.renew(job, progress=self.progress[job.id], progress_text="KSampler")
                for job in jobs[i : i + 50]
            ))  # fmt: skip
        page = await self.client.jobs("queued", "comfyui", limit=50)
        for job in self.rng.sample(page, k=min(2, len(page))):
            await self.client.bump(job.id, min(1000, job.priority + 1))
        # Short jobs: some finish (and leave the running rows), their GPUs claim the next.
        for target in self.rng.sample(sorted(self.running), k=min(self.churn, len(self.running))):
            finished = self.running[target]
            await self.worker.complete(finished, [])
            del self.progress[finished.id]
            host, _, gpu = target.partition(":")
            outcome = await self.worker.try_claim(["comfyui"], host, int(gpu))
            if outcome.job is None:
                del self.running[target]
            else:
                self.running[target] = outcome.job
                self.progress[outcome.job.id] = 0.0

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.worker.aclose()


def ms(seconds: float) -> float:
    return seconds * 1000.0


class CollectorClock:
    """The CPU time the garbage collector takes, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_collect)

    def _on_collect(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.total_s += time.process_time() - self._started


class FleetTicks:
    """The measuring process's side of the simulated fleet, which runs in the parent: asks
    for one second of fleet activity (a line on stdout) and waits until it is done (a line on
    stdin). The fleet's own work (240 GPU publishes, 200 renewals a second) and its garbage
    stay out of the dashboard's process, as a real fleet's supervisors do."""

    async def tick(self) -> None:
        sys.stdout.write("tick\n")
        sys.stdout.flush()
        # Blocking: the dashboard has nothing else to do until the fleet has moved on.
        if sys.stdin.readline().strip() != "done":
            raise RuntimeError("the fleet process went away")


async def measure(
    url: str, namespace: str, refreshes: int, size: tuple[int, int], warmup: int
) -> Result:
    """In this (fresh) process: run the app headless on a seeded namespace and time each refresh.

    Each refresh: the fleet (in the parent process) moves on, not timed; the app's poller reads
    and builds a snapshot (timed: poller); the main screen applies it and the frame is drawn
    (timed: widgets). The first ``warmup`` refreshes are reported apart: the render caches
    fill then, and the collector runs more often than it will for the rest of the app's life.
    """
    settings = Settings(redis_url=url, namespace=namespace)
    fleet = FleetTicks()
    app: FleetqApp = create_app(settings, refresh_s=3600, freeze_gc=True)  # as tui.app.run
    poller_ms: list[float] = []
    wall_ms: list[float] = []
    widget_ms: list[float] = []
    gc_ms: list[float] = []
    warmup_sums: list[float] = []
    collector = CollectorClock()
    first_ms = 0.0
    async with app.run_test(size=size) as pilot:
        screen = app.main_screen
        while screen.snapshot is None:  # the first refresh (the app's own) builds every row
            await pilot.pause(0.01)
        for i in range(warmup + refreshes + 1):
            await fleet.tick()
            collected = collector.total_s
            c0, w0 = time.process_time(), time.perf_counter()
            snapshot = await screen.poller.read_once()
            read_cpu, read_wall = ms(time.process_time() - c0), ms(time.perf_counter() - w0)
            c0 = time.process_time()
            screen.on_poller_updated(Poller.Updated(snapshot))
            await pilot.pause(0.05)  # the frame is drawn in this window; idle costs no CPU
            cost = ms(time.process_time() - c0)
            if i == 0:
                first_ms = cost  # ages and rows settle after the app's own first refresh
                continue
            if i <= warmup:
                warmup_sums.append(read_cpu + cost)
                continue
            poller_ms.append(read_cpu)
            wall_ms.append(read_wall)
            widget_ms.append(cost)
            gc_ms.append(ms(collector.total_s - collected))
        rss_mb = psutil.Process().memory_info().rss / 2**20
    noise = await machine_noise(refreshes)
    return Result(0, HOSTS * GPUS_PER_HOST, 0.0, poller_ms, wall_ms, first_ms, widget_ms,
                  rss_mb, gc_ms, warmup_sums, noise)  # fmt: skip


async def drive(
    url: str,
    namespace: str,
    refreshes: int,
    term: str,
    warmup: int,
    scripts: list[Path],
    churn: int = 0,
) -> list[dict[str, Any]]:
    """Run the simulated fleet here and each measured dashboard in a fresh process (its RSS and
    CPU are its own): one per script in ``scripts`` (this one, and with ``--against`` the same
    script of another checkout, which measures that checkout's dashboard).

    Each round the fleet moves on once, then each dashboard refreshes on that same state in
    turn, alone (the next one starts when the previous one has drawn and asks for more), in
    an order that alternates between rounds: two versions compared this way see the same data
    and the same moments of the machine's speed.
    """
    settings = Settings(redis_url=url, namespace=namespace)
    fleet = Fleet(settings, churn)
    await fleet.start()
    children = []
    for script in scripts:
        child = await asyncio.create_subprocess_exec(
            sys.executable, str(script), "--measure", url, namespace, "--refreshes",
            str(refreshes), "--warmup", str(warmup), "--terminal", term,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=script.parent.parent,
        )  # fmt: skip
        children.append(child)
    finals: list[bytes] = [b""] * len(children)

    async def asks(i: int) -> bool:
        """Wait until child ``i`` asks for the next state (True) or has ended (False)."""
        stdout = children[i].stdout
        assert stdout is not None
        while line := await stdout.readline():
            if line.strip() == b"tick":
                return True
            finals[i] = line
        return False

    try:
        live = [i for i in range(len(children)) if await asks(i)]
        rounds = 0
        while live:
            await fleet.tick()
            order = live if rounds % 2 == 0 else live[::-1]
            rounds += 1
            for i in order:
                stdin = children[i].stdin
                assert stdin is not None
                stdin.write(b"done\n")
                await stdin.drain()
                if not await asks(i):
                    live.remove(i)
        out = []
        for child, last in zip(children, finals, strict=True):
            if await child.wait() != 0:
                raise RuntimeError(f"a measuring process failed (exit {child.returncode})")
            data: dict[str, Any] = json.loads(last)
            data["queued"] = (await fleet.client.stats()).total("queued")
            out.append(data)
        return out
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        await fleet.aclose()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summed(r: Result) -> list[float]:
    """The CPU of each refresh: its poller read and build plus its widget update."""
    return [p + w for p, w in zip(r.poller_ms, r.widget_ms, strict=True)]


def table(results: list[Result]) -> str:
    lines = [
        "| queued jobs | GPUs (hosts) | poller read+build CPU ms, median / p95 / max | "
        "read wall ms, median | widget update CPU ms, median / p95 / max (first) | "
        "sum CPU ms, median / p95 | RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.queued:,} | {r.gpus} ({HOSTS}) "
            f"| {statistics.median(r.poller_ms):.1f} / {p95(r.poller_ms):.1f} "
            f"/ {max(r.poller_ms):.1f} "
            f"| {statistics.median(r.read_wall_ms):.1f} "
            f"| {statistics.median(r.widget_ms):.1f} / {p95(r.widget_ms):.1f} "
            f"/ {max(r.widget_ms):.1f} "
            f"({r.widget_first_ms:.0f}) "
            f"| {statistics.median(summed(r)):.1f} / {p95(summed(r)):.1f} "
            f"| {r.rss_mb:.0f} |"
        )
    return "\n".join(lines)


def run_size(
    url: str,
    queued: int,
    refreshes: int,
    term: str,
    warmup: int,
    against: Path | None,
    churn: int = 0,
) -> list[Result]:
    """Seed a namespace here, then measure it in a fresh process while the fleet moves here
    (and, with ``against``, that checkout's dashboard in another, turn about). With ``churn``,
    enough more jobs are queued that the ones claimed in the run never empty the queue."""
    namespace = f"bench-tui-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    with Client(Settings(redis_url=url, namespace=namespace)) as client:
        seeded = queued + RUNNING + churn * (warmup + refreshes + 2)
        seed_queued(client, seeded)
    seed_s = time.perf_counter() - t0
    scripts = [Path(__file__).resolve()]
    if against is not None:
        scripts.append(against / "scripts" / "bench_tui.py")
    results = []
    for data in asyncio.run(drive(url, namespace, refreshes, term, warmup, scripts, churn)):
        data["seed_s"] = seed_s
        data["seeded"] = seeded
        results.append(Result(**data))
    return results


def commit_of(checkout: Path) -> str:
    """The short commit a checkout is at (for the report), or its path."""
    try:
        return subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return str(checkout)


def paired(ours: Result, theirs: Result) -> str:
    """The two versions' sums refresh by refresh (each pair read the same fleet state within
    a fraction of a second of each other)."""
    a, b = summed(ours), summed(theirs)
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    lower = sum(1 for d in diffs if d < 0)
    return (
        f"{ours.queued:,} queued, refresh by refresh: this minus the other, median "
        f"{statistics.median(diffs):+.1f} ms; this one lower in {lower} of {len(diffs)}; "
        f"medians {statistics.median(a):.1f} vs {statistics.median(b):.1f} ms "
        f"({(statistics.median(a) / statistics.median(b) - 1) * 100:+.0f} %), p95 "
        f"{p95(a):.1f} vs {p95(b):.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100000", help="queued jobs per run, comma list")
    parser.add_argument("--refreshes", type=int, default=60, help="measured refreshes per size")
    parser.add_argument(
        "--warmup", type=int, default=60, help="refreshes before them, reported apart"
    )
    parser.add_argument("--terminal", default="160x48", help="headless terminal size, WxH")
    parser.add_argument(
        "--churn",
        type=int,
        default=0,
        metavar="N",
        help="jobs that finish each second (their GPUs claim the next): short jobs",
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="CHECKOUT",
        help="also measure another checkout's dashboard (its own copy of this script), turn "
        "about with this one on the same fleet",
    )
    parser.add_argument("--measure", nargs=2, metavar=("URL", "NS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(v) for v in args.terminal.split("x"))
    if args.measure:  # the child process: measure one seeded namespace, print JSON
        url, namespace = args.measure
        result = asyncio.run(measure(url, namespace, args.refreshes, (width, height), args.warmup))
        print(json.dumps(asdict(result)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    against = None if args.against is None else args.against.resolve()
    with RedisServer() as server:
        runs = [
            run_size(
                server.url,
                n,
                max(3, args.refreshes),
                args.terminal,
                args.warmup,
                against,
                args.churn,
            )
            for n in sizes
        ]
    results = [versions[0] for versions in runs]
    if against is None:
        print(table(results))
    else:
        print(f"this checkout ({commit_of(ROOT)}), then {against} ({commit_of(against)}):")
        print(table([r for versions in runs for r in versions]))
        print()
        for ours, theirs in runs:
            print(paired(ours, theirs))
    print()
    print(
        f"{HOSTS * GPUS_PER_HOST} GPUs on {HOSTS} hosts, {RUNNING} running jobs"
        f"{f' ({args.churn} finishing a second)' if args.churn else ''}, page of 200 "
        f"jobs per state; {args.refreshes} refreshes per size measured after {args.warmup}; "
        f"Python {platform.python_version()},"
        f" Textual {textual.__version__}, {platform.machine()}, {psutil.cpu_count()} CPUs;"
        f" terminal {width}x{height}."
    )
    for r in results:
        print(f"seeding {r.seeded or r.queued + RUNNING:,} jobs took {r.seed_s:.1f} s")
        collecting = [g for g in r.gc_ms if g > 0]
        print(
            f"{r.queued:,} queued: the garbage collector ran in {len(collecting)} of "
            f"{len(r.gc_ms)} refreshes, {statistics.fmean(r.gc_ms):.1f} ms per refresh on average"
            f" (max {max(r.gc_ms):.1f} ms), included in the sums"
        )
        if r.warmup_sums:
            print(
                f"{r.queued:,} queued, the {len(r.warmup_sums)} refreshes before (render caches "
                f"filling): sum CPU ms median {statistics.median(r.warmup_sums):.1f}, "
                f"p95 {p95(r.warmup_sums):.1f}"
            )
        noise = statistics.median(r.noise_ms)
        print(
            f"the machine's own noise, a fixed workload at the same cadence: median {noise:.1f} ms,"
            f" p95 {p95(r.noise_ms):.1f} ms ({p95(r.noise_ms) / noise:.2f}x; the sums' p95 is "
            f"{p95(summed(r)) / statistics.median(summed(r)):.2f}x their median)"
        )
    worst_cpu = max(p95(summed(r)) for r in results)
    worst_rss = max(r.rss_mb for r in results)
    ok = worst_cpu <= TARGET_CPU_MS and worst_rss <= TARGET_RSS_MB
    print(
        f"targets: <= {TARGET_CPU_MS:.0f} ms CPU per refresh, summed (worst p95 {worst_cpu:.1f}), "
        f"<= {TARGET_RSS_MB:.0f} MB RSS (worst {worst_rss:.0f}): {'met' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
