"""A private Redis for the demo and the tests: a ``redis-server`` child process on a free
loopback port, or, when none is installed, fakeredis's TCP server in a thread.
"""

from __future__ import annotations

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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


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
            raise FleetqError(
                "redis-server is not installed (Debian: apt-get install redis-server)"
            )
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
    """fakeredis's TCP server in a background thread, for machines without ``redis-server``.

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
    """A real ``redis-server`` when installed, otherwise fakeredis over TCP."""
    if redis_server_binary() is not None:
        return RedisServer().start()
    return FakeRedisServer().start()
