"""Child processes of the benchmark and chaos scripts, each in its own session so that a
whole process group can be stopped; free loopback ports; a private redis-server.

``fleetq.demo.processes`` does the same for the demo and can adopt this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis

from fleetq.demo.embedded import INSTALL_HINT, redis_server_binary


def _child_setup() -> None:
    """In the child: its own session (so its whole group can be signalled), and SIGTERM when
    the benchmark dies (Linux), so nothing outlives a killed run."""
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Children:
    """Child processes in their own sessions; :meth:`stop_all` ends each process group."""

    log_dir: Path
    processes: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop_all
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            preexec_fn=_child_setup,
        )
        self.processes.append((name, process, log))
        return process

    def check_alive(self) -> None:
        for name, process, _ in self.processes:
            if process.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop_all(self, timeout_s: float = 15.0) -> None:
        """SIGTERM every group (supervisors drain), then SIGKILL whatever is left."""
        for _, process, _ in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for _, process, log in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # stragglers in the group, if any
            process.wait()
            log.close()
        self.processes.clear()


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def consecutive_free_ports(count: int) -> int:
    """A base port such that base .. base+count-1 were all free a moment ago, below the
    ephemeral range (32768+ on Linux), where outgoing connections cannot take them meanwhile."""
    low, high = 10000, 32700
    start = low + (os.getpid() * 7919) % (high - low - count)
    for offset in range(0, high - low, 97):
        base = low + (start - low + offset) % (high - low - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def wait_for_port(
    port: int, timeout_s: float, children: Children | subprocess.Popen[bytes]
) -> None:
    """Until something listens on the loopback ``port``; fails early when the children (or the
    one process) that should open it exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if isinstance(children, Children):
            children.check_alive()
        elif children.poll() is not None:
            raise RuntimeError(f"{children.args!r} exited with {children.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # a child's listening socket; there is no event to wait on
    raise RuntimeError(f"nothing listening on port {port} after {timeout_s:.0f} s")


def start_redis(children: Children, data_dir: Path) -> int:
    """A redis-server without persistence on a free port, as a child; returns the port."""
    binary = redis_server_binary()  # the system's redis-server, else the bundled Valkey
    if binary is None:
        raise SystemExit(f"no Redis server is installed: {INSTALL_HINT}")
    port = free_port()
    children.start("redis", [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(data_dir), "--daemonize", "no", "--protected-mode", "yes",
        "--loglevel", "warning",
    ])  # fmt: skip
    wait_for_port(port, 10, children)
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return port
            except redis.exceptions.BusyLoadingError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # loading; nothing to block on
    finally:
        client.close()


def python_env(src: Path) -> dict[str, str]:
    """This environment with ``src`` first on PYTHONPATH and fleetq logging warnings only."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    env["FLEETQ_LOG_LEVEL"] = "WARNING"
    return env


@contextlib.contextmanager
def children_in_tmp(prefix: str, say: Callable[[str], None]) -> Iterator[Children]:
    """Children whose logs go to a fresh temporary folder (``children.log_dir``), all stopped
    on the way out; the folder is removed after a clean run and kept (and named) after a
    failed one, for its logs."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    children = Children(tmp)
    ok = False
    try:
        yield children
        ok = True
    finally:
        children.stop_all()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            say(f"logs kept in {tmp}")
