"""The processes of a chaos run: redis-server, the fakes, the proxy and the supervisors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from fault_proxy import FaultProxy

from fleetbench.chaos.options import NAMESPACE, ChaosOptions
from fleetbench.paths import ROOT, SCRIPTS
from fleetbench.processes import consecutive_free_ports, wait_for_port
from fleetq import Settings
from fleetq.demo.embedded import RedisServer

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
                            str(SCRIPTS / "chaos.py"),
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
