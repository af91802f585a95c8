"""A Redis Cluster on loopback for the tests: three primaries, one replica each, every node a
``redis-server`` child with its own folder. ``redis-cli --cluster create`` assigns the slots and
the replicas; a primary SIGKILLed is replaced by its replica after ``node_timeout_ms``."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass, field

import redis
from ha_testkit import until
from redis.crc import key_slot

from fleetq.demo.embedded import RedisServer, free_port


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is valid and free too."""
    while True:
        port = free_port()
        if port + 10_000 > 65_535:
            continue
        with contextlib.suppress(OSError), socket.socket() as s:
            s.bind(("127.0.0.1", port + 10_000))
            return port


def namespace_slot(namespace: str) -> int:
    """The hash slot of every key of a namespace (they share the ``{namespace}`` tag)."""
    return int(key_slot(("{" + namespace + "}:seq").encode()))


@dataclass
class LocalCluster:
    primaries: int = 3
    replicas: int = 1
    node_timeout_ms: int = 1000
    nodes: list[RedisServer] = field(default_factory=list)

    def start(self) -> LocalCluster:
        for _ in range(self.primaries * (1 + self.replicas)):
            port = cluster_port()
            node = RedisServer(
                port=port,
                extra_args=(
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", f"nodes-{port}.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    "--cluster-replica-validity-factor", "0",
                    "--appendonly", "yes", "--appendfsync", "always",
                ),
            )  # fmt: skip
            self.nodes.append(node.start())
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas",
             str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        until(self._healthy, 30, "the cluster to be ok with every replica in sync")
        return self

    def url(self, *nodes: RedisServer) -> str:
        """A ``redis+cluster://`` URL naming ``nodes`` (default: the first node only)."""
        chosen = nodes or self.nodes[:1]
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in chosen)

    def _client(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(port=node.port, socket_timeout=2, socket_connect_timeout=1)

    def _live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def _healthy(self) -> bool:
        for node in self._live():
            r = self._client(node)
            try:
                if r.cluster("info").get("cluster_state") != "ok":
                    return False
                role = r.info("replication")
                if role["role"] == "slave" and role.get("master_link_status") != "up":
                    return False
            finally:
                r.close()
        return True

    def owner(self, slot: int) -> RedisServer:
        """The live node that serves ``slot`` now, by the view of every live node."""

        def agreed() -> RedisServer | None:
            ports = set()
            for node in self._live():
                r = self._client(node)
                try:
                    for start, end, primary, *_ in r.execute_command("CLUSTER", "SLOTS"):
                        if start <= slot <= end:
                            ports.add(int(primary[1]))
                finally:
                    r.close()
            if len(ports) != 1:
                return None
            return next((n for n in self._live() if n.port in ports), None)

        return until(agreed, 30, f"one agreed owner of slot {slot}")

    def primaries_ports(self) -> list[int]:
        r = self._client(self._live()[0])
        try:
            return sorted({int(p[1]) for _s, _e, p, *_ in r.execute_command("CLUSTER", "SLOTS")})
        finally:
            r.close()

    def fail_primary(self, slot: int) -> tuple[RedisServer, float]:
        """SIGKILL the primary of ``slot``; returns it and the seconds until a replica took
        over and the cluster was ok again."""
        old = self.owner(slot)
        started = time.monotonic()
        old.kill()
        until(lambda: self.owner(slot).port != old.port and self._state_ok(), 60,
              f"a replica to take slot {slot} over")  # fmt: skip
        return old, time.monotonic() - started

    def _state_ok(self) -> bool:
        for node in self._live():
            r = self._client(node)
            try:
                if r.cluster("info").get("cluster_state") != "ok":
                    return False
            finally:
                r.close()
        return True

    def close(self) -> None:
        for node in self.nodes:
            node.close()
