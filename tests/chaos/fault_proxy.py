"""A TCP proxy on loopback in front of Redis that loses replies: the command reaches Redis and
runs, but the client's connection is cut before the reply comes back, as when a connection
breaks at the worst moment. redis-py then resends the command on a new connection, so every
write must answer its own resend like the first.

Two ways to lose a reply:

* :meth:`FaultProxy.drop_next`: the next command whose bytes contain a marker
  (``b"EVALSHA"``, a script's SHA, a job id...);
* ``drop_rate``: each command, with that probability (seeded), for chaos runs.

Threads, not asyncio, so the same proxy serves sync tests, async tests and the chaos script.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:upstream_port``, losing replies on demand."""

    def __init__(self, upstream_port: int, drop_rate: float = 0.0, seed: int = 0) -> None:
        self.upstream_port = upstream_port
        self.drop_rate = drop_rate
        self.dropped = 0
        self._random = random.Random(seed)
        self._markers: list[bytes] = []
        self._lock = threading.Lock()
        self._closed = False
        self._sockets: set[socket.socket] = set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_next(self, marker: bytes, times: int = 1) -> None:
        """Lose the reply of the next ``times`` commands containing ``marker``."""
        with self._lock:
            self._markers += [marker] * times

    def _should_drop(self, data: bytes) -> bool:
        with self._lock:
            for i, marker in enumerate(self._markers):
                if marker in data:
                    del self._markers[i]
                    return True
            return self.drop_rate > 0 and self._random.random() < self.drop_rate

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:  # Redis is down: the client sees its connection refused or reset
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            deaf = threading.Event()
            threading.Thread(
                target=self._requests, args=(client, upstream, deaf), daemon=True
            ).start()
            threading.Thread(
                target=self._replies, args=(upstream, client, deaf), daemon=True
            ).start()

    def _requests(
        self, client: socket.socket, upstream: socket.socket, deaf: threading.Event
    ) -> None:
        try:
            while data := client.recv(65536):
                if not deaf.is_set() and self._should_drop(data):
                    deaf.set()
                upstream.sendall(data)  # Redis runs the command in every case
        except OSError:
            pass
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    def _replies(
        self, upstream: socket.socket, client: socket.socket, deaf: threading.Event
    ) -> None:
        try:
            while data := upstream.recv(65536):
                if deaf.is_set():
                    # Redis answered, so it read and ran the whole command (however many
                    # segments it took); the client never hears back.
                    with self._lock:
                        self.dropped += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
        self._close(client)
        self._close(upstream)

    def _close(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.close()
        with self._lock:
            self._sockets.discard(sock)

    def cut_all(self) -> None:
        """Cut every open connection (both sides), as a network blip does."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut_all()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
