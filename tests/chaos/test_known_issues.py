"""Reproductions of issues the chaos work found, kept as regression tests once fixed.

A submit whose reply was lost used to create a second, orphaned job (fixed in 5165f2c: a resent
submit is answered as the first). See docs/RELIABILITY.md, "Findings"."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from fleetq import Client, Settings
from fleetq.embedded import RedisServer, redis_server_binary

needs_redis = pytest.mark.skipif(redis_server_binary() is None, reason="no redis-server")


class ReplyCutter:
    """A TCP proxy in front of Redis that, once armed, passes the next command containing
    ``marker`` to Redis but cuts the client's connection first: the command runs, its reply
    is lost, as when a connection breaks at the wrong moment."""

    def __init__(self, upstream_port: int, marker: bytes) -> None:
        self.upstream_port = upstream_port
        self.marker = marker
        self.armed = False
        self.cut = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, inspect: bool) -> None:
        try:
            while data := src.recv(65536):
                if inspect and self.armed and self.marker in data:
                    self.armed = False
                    self.cut += 1
                    src.shutdown(socket.SHUT_RDWR)  # the client loses its connection...
                    dst.sendall(data)  # ...but Redis runs the command
                    time.sleep(0.2)  # let it run before the upstream side closes too
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            src.close()
            dst.close()

    def close(self) -> None:
        self.listener.close()


@contextmanager
def redis_behind_cutter(marker: bytes) -> Iterator[tuple[RedisServer, ReplyCutter]]:
    with RedisServer() as server:
        cutter = ReplyCutter(server.port, marker)
        try:
            yield server, cutter
        finally:
            cutter.close()


@needs_redis
def test_a_lost_submit_reply_does_not_create_a_second_job() -> None:
    workflow = {"1": {"class_type": "EmptyImage", "inputs": {}}}
    with redis_behind_cutter(b"EVALSHA") as (_, cutter):
        settings = Settings(redis_url=f"redis://127.0.0.1:{cutter.port}/0", namespace="dup")
        with Client(settings) as client:
            client.submit(workflow)  # loads the script (a first EVALSHA would be NOSCRIPT)
            cutter.armed = True
            job = client.submit(workflow, priority=5)
            assert cutter.cut == 1
            queued = [s.id for s in client.jobs("queued", "comfyui")]
            assert len(queued) == 2, f"{job.id} submitted once, queued now: {queued}"
