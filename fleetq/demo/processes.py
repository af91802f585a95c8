"""Child processes of the demo: started with their output in log files, always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
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
class Child:
    """One child process of the group; ``stage`` orders the stop (highest first)."""

    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    stage: int


@dataclass
class ProcessGroup:
    """Starts ``python -m fleetq.cli.main ...`` children; :meth:`stop_all` ends every one.

    Children stop in stages, highest ``stage`` first, each stage after the one above has
    exited: the supervisors (stage 1) drain while their backends (stage 0) still answer, so a
    running job ends on its backend instead of waiting out the drain limit for a dead one.
    """

    log_dir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    children: list[Child] = field(default_factory=list)

    @property
    def processes(self) -> list[tuple[str, subprocess.Popen[bytes], IO[bytes]]]:
        return [(c.name, c.process, c.log) for c in self.children]

    def start(self, name: str, args: Sequence[str], stage: int = 0) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop_all
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetq.cli.main", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,  # a Ctrl-C in the terminal reaches only the demo itself
        )
        self.children.append(Child(name, process, log, stage))
        return process

    def alive(self) -> list[str]:
        return [c.name for c in self.children if c.process.poll() is None]

    def stop_all(
        self,
        timeout_s: float = 10.0,
        progress: Callable[[str], None] | None = None,
        stage_names: Mapping[int, str] | None = None,
    ) -> None:
        """SIGTERM each stage (supervisors drain), wait for it, SIGKILL what is left after
        ``timeout_s``; then the next stage. ``progress`` hears one line per stage."""
        for stage in sorted({c.stage for c in self.children}, reverse=True):
            children = [c for c in self.children if c.stage == stage]
            if progress is not None:
                what = (stage_names or {}).get(stage, "processes")
                progress(f"stopping {len(children)} {what}")
            for child in children:
                if child.process.poll() is None:
                    child.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            for child in children:
                try:
                    child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()
                child.log.close()
        self.children.clear()
