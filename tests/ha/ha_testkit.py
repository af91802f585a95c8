"""A Redis primary, one replica and three Sentinels on loopback, for the failover tests.

Every process is a ``redis-server`` child (a Sentinel is ``redis-server FILE --sentinel``) with
its data and log in one temporary folder. Sentinels notice a dead primary after
``down_after_ms`` and need 2 of 3 votes to fail over.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import redis

from fleetq.demo.embedded import RedisServer, free_port, redis_server_binary

SERVICE = "fleetq-ha"
T = TypeVar("T")


@dataclass(frozen=True)
class Tls:
    """A throwaway CA and one certificate (SAN 127.0.0.1) that every node presents."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, folder: Path) -> Tls:
        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
                "ca.pem", "-days", "1", "-subj", "/CN=fleetq HA test CA")  # fmt: skip
        (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out",
                "node.csr", "-subj", "/CN=fleetq HA node")  # fmt: skip
        openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "node.pem", "-days", "1",
                "-extfile", "san.cnf")  # fmt: skip
        return cls(folder / "ca.pem", folder / "node.pem", folder / "node.key")

    def args(self) -> tuple[str, ...]:
        return ("--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key),
                "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no",
                "--tls-replication", "yes")  # fmt: skip

    def conf(self) -> list[str]:
        return [f"tls-cert-file {self.cert}", f"tls-key-file {self.key}",
                f"tls-ca-cert-file {self.ca}", "tls-auth-clients no",
                "tls-replication yes"]  # fmt: skip


def until(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy (cluster state has no event to wait
    on but the Sentinels' view, which changes on their own timers)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(redis.exceptions.RedisError):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class AuthRedisServer(RedisServer):
    """A :class:`RedisServer` whose readiness check authenticates (``requirepass``)."""

    password: str | None = None

    def _wait_ready(self, timeout_s: float) -> None:
        client = redis.Redis(port=self.port, password=self.password, socket_timeout=1,
                             socket_connect_timeout=0.2)  # fmt: skip
        try:
            until(lambda: self._alive() and client.ping(), timeout_s, f"redis on {self.port}")
        finally:
            client.close()

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"redis-server on {self.port} exited at start")
        return True


@dataclass
class Sentinel:
    port: int
    conf: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = redis_server_binary()
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, str(self.conf), "--sentinel", "--logfile", str(self.log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class HaCluster:
    """Primary + replica + 3 Sentinels. ``password`` protects the data nodes (the replica
    and the Sentinels authenticate with it); the Sentinels themselves have none."""

    down_after_ms: int = 1_000
    password: str | None = None
    #: TLS between every process (nodes, replication, Sentinels) and for clients
    #: (``rediss+sentinel://``). Plain ports stay open for the test's own checks.
    tls: bool = False
    data_args: tuple[str, ...] = ()
    nodes: list[RedisServer] = field(default_factory=list)
    sentinels: list[Sentinel] = field(default_factory=list)
    #: plain port -> TLS port of each node and Sentinel (with ``tls``).
    tls_ports: dict[int, int] = field(default_factory=dict)
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    _tls: Tls | None = None

    @property
    def folder(self) -> Path:
        assert self._tmp is not None
        return Path(self._tmp.name)

    @property
    def ca(self) -> Path:
        assert self._tls is not None
        return self._tls.ca

    def url(self, scheme: str = "redis+sentinel", db: int = 0, **query: str) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        ports = [self.tls_ports.get(s.port, s.port) for s in self.sentinels]
        hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
        tail = "&".join(f"{k}={v}" for k, v in query.items())
        return f"{scheme}://{auth}{hosts}/{SERVICE}/{db}" + (f"?{tail}" if tail else "")

    def _auth_args(self) -> tuple[str, ...]:
        if not self.password:
            return ()
        return ("--requirepass", self.password, "--masterauth", self.password)

    def start(self) -> HaCluster:
        self._tmp = tempfile.TemporaryDirectory(prefix="fleetq-ha-")
        if self.tls:
            self._tls = Tls.make(self.folder)
        primary = self._node("primary", ())
        self.nodes.append(primary.start())
        primary_port = self.tls_ports.get(primary.port, primary.port)
        replica = self._node("replica", ("--replicaof", "127.0.0.1", str(primary_port)))
        self.nodes.append(replica.start())
        until(lambda: self._link_up(replica), 10, "the replica to sync")
        for n in range(3):
            port = free_port()
            conf = self.folder / f"sentinel-{n}.conf"
            lines = [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {self.folder}",
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2",
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}",
                f"sentinel failover-timeout {SERVICE} 10000",
                f"sentinel parallel-syncs {SERVICE} 1",
            ]
            if self.password:
                lines.append(f"sentinel auth-pass {SERVICE} {self.password}")
            if self._tls is not None:
                tls_port = self.tls_ports[port] = free_port()
                lines += [f"tls-port {tls_port}", f"sentinel announce-port {tls_port}",
                          *self._tls.conf()]  # fmt: skip
            conf.write_text("\n".join(lines) + "\n")
            sentinel = Sentinel(port, conf, self.folder / f"sentinel-{n}.log")
            sentinel.start()
            self.sentinels.append(sentinel)
        for sentinel in self.sentinels:
            until(lambda s=sentinel: self._sees_everyone(s), 20, "the Sentinels to meet")  # type: ignore[misc]
        return self

    def _node(self, name: str, args: tuple[str, ...]) -> RedisServer:
        folder = self.folder / name
        folder.mkdir()
        port = free_port()
        tls: tuple[str, ...] = ()
        if self._tls is not None:
            tls_port = self.tls_ports[port] = free_port()
            tls = ("--tls-port", str(tls_port), "--replica-announce-port", str(tls_port),
                   *self._tls.args())  # fmt: skip
        return AuthRedisServer(
            port=port,
            password=self.password,
            data_dir=folder,
            extra_args=(*self._auth_args(), "--repl-diskless-sync", "yes",
                        "--repl-diskless-sync-delay", "0", *tls, *self.data_args, *args),
        )  # fmt: skip

    def _data_client(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(port=node.port, password=self.password, socket_timeout=2)

    def _link_up(self, replica: RedisServer) -> bool:
        with contextlib.closing(self._data_client(replica)) as r:
            info: Any = r.info("replication")
        return bool(info.get("master_link_status") == "up")

    def _sees_everyone(self, sentinel: Sentinel) -> bool:
        with contextlib.closing(sentinel.client()) as r:
            state: Any = r.sentinel_master(SERVICE)
        return bool(state["num-other-sentinels"] >= 2 and state["num-slaves"] >= 1)

    def primary_port(self) -> int:
        for sentinel in self.sentinels:
            if sentinel.process is None:
                continue
            with (
                contextlib.suppress(redis.exceptions.RedisError),
                contextlib.closing(sentinel.client()) as r,
            ):
                host_port: Any = r.sentinel_get_master_addr_by_name(SERVICE)
                if host_port:
                    return int(host_port[1])
        raise AssertionError("no Sentinel answers")

    def node(self, port: int) -> RedisServer:
        """The node listening on ``port`` (its plain or, with TLS, its TLS port)."""
        return next(n for n in self.nodes if port in (n.port, self.tls_ports.get(n.port)))

    def primary(self) -> RedisServer:
        return self.node(self.primary_port())

    def client_of(self, port: int) -> redis.Redis:
        return self._data_client(self.node(port))

    def failover(self) -> int:
        """``SENTINEL FAILOVER``: promote the replica; returns the new primary's port."""
        old = self.primary_port()
        with contextlib.closing(self.sentinels[0].client()) as r:
            r.sentinel_failover(SERVICE)
        return self._await_new_primary(old)

    def kill_primary(self) -> int:
        """SIGKILL the primary (no shutdown, no final sync); returns the new primary's port
        once the Sentinels promoted the replica."""
        old = self.primary_port()
        self.node(old).kill()
        return self._await_new_primary(old)

    def restart_as_replica(self, node: RedisServer) -> None:
        """Restart a killed node as a replica of the current primary, as its configuration
        file would say once the Sentinels rewrote it. Restarted with its first arguments
        instead, a node without persistence comes back as an empty primary until a Sentinel
        demotes it, and under heavy load the promoted replica was once seen resyncing from
        it (every key gone)."""
        replica_of = ("--replicaof", "127.0.0.1", str(self.primary_port()))
        base = node.extra_args
        if "--replicaof" in base:
            at = base.index("--replicaof")
            base = base[:at] + base[at + 3 :]
        node.extra_args = (*base, *replica_of)
        node.start()

    def switches(self) -> list[float]:
        """When the Sentinels switched the primary (``time.time()`` seconds), oldest first,
        from their logs (every Sentinel logs each switch: those within a second are one)."""
        times = []
        for sentinel in self.sentinels:
            if not sentinel.log.exists():
                continue
            for line in sentinel.log.read_text(errors="replace").splitlines():
                if "+switch-master" in line:
                    # "pid:X 03 Dec 2026 13:40:01.123 # +switch-master ...", in local time.
                    stamp = " ".join(line.split()[1:5])
                    times.append(datetime.strptime(stamp, "%d %b %Y %H:%M:%S.%f").timestamp())
        out: list[float] = []
        for at in sorted(times):
            if not out or at - out[-1] > 1.0:
                out.append(at)
        return out

    def views(self) -> set[int]:
        """The primary port each live Sentinel reports."""
        ports = set()
        for sentinel in self.sentinels:
            if sentinel.process is not None:
                with contextlib.closing(sentinel.client()) as r:
                    answer: Any = r.sentinel_get_master_addr_by_name(SERVICE)
                    ports.add(int(answer[1]))
        return ports

    def _await_new_primary(self, old: int) -> int:
        # All Sentinels must agree before anyone restarts the old primary: one that still has
        # the old configuration can take a restarted, empty old primary for the master and
        # the cluster can flip back to it, wiping the promoted replica (seen once in ~25
        # runs when the old primary, without persistence, came back within 0.1 s).
        def promoted() -> int | None:
            views = self.views()
            if len(views) != 1 or old in views:
                return None
            port = views.pop()
            with contextlib.closing(self.client_of(port)) as r:
                return port if r.info("replication")["role"] == "master" else None

        return until(promoted, 30, "a new primary that every Sentinel reports")

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for node in self.nodes:
            node.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
