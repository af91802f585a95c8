"""Child processes of the demo: started with their output in log files, always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from fleetq.errors import FleetqError


def consecutive_free_ports(count: int, host: str = "127.0.0.1") -> int:
    """A base port such that base .. base+count-1 were all free a moment ago."""
    for base in range(21000 + (os.getpid() % 97) * 211, 60000, 37):
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind((host, port))
                sockets.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise FleetqError(f"no {count} consecutive free ports on {host}")


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise FleetqError(f"{process.args!r} exited with {process.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # polling a child's listening socket; there is no event to wait on
    raise FleetqError(f"nothing listening on port {port} after {timeout_s:.0f} s")


@dataclass
class ProcessGroup:
    """Starts ``python -m fleetq.cli.main ...`` children; :meth:`stop_all` ends every one."""

    log_dir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    processes: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop_all
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetq.cli.main", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,  # a Ctrl-C in the terminal reaches only the demo itself
        )
        self.processes.append((name, process, log))
        return process

    def alive(self) -> list[str]:
        return [name for name, p, _ in self.processes if p.poll() is None]

    def stop_all(self, timeout_s: float = 10.0) -> None:
        """SIGTERM everything (supervisors drain), then SIGKILL what is left."""
        for _, process, _ in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for _, process, log in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
        self.processes.clear()
