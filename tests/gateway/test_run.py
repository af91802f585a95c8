"""The blocking server: serves until told to stop, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from fleetq import Settings
from fleetq.gateway.main import serve

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_until_stopped(settings: Settings) -> None:
    port = free_port()
    started, stop = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(
        serve(settings, "127.0.0.1", port, ["token-0123456789abcdef"], started=started, stop=stop)
    )
    await asyncio.wait_for(started.wait(), 10)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/stats") as r:
            assert r.status == 401
        headers = {"Authorization": "Bearer token-0123456789abcdef"}
        async with session.get(f"http://127.0.0.1:{port}/stats", headers=headers) as r:
            assert r.status == 200
    stop.set()
    assert await asyncio.wait_for(server, 10) == 0


@pytest.mark.slow
async def test_sigterm_ends_open_streams_and_exits_0(settings: Settings) -> None:
    port = free_port()
    code = (
        "import sys; from fleetq import Settings; from fleetq.gateway.main import run_gateway; "
        f"sys.exit(run_gateway(Settings(redis_url={settings.redis_url!r}, "
        f"namespace={settings.namespace!r}), '127.0.0.1', {port}, []))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 20
            while True:  # the process needs a moment to import and bind
                try:
                    async with session.get(base + "/healthz") as r:
                        assert r.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "gateway did not start"
                    await asyncio.sleep(0.05)
            async with session.get(base + "/v1/events") as stream:
                assert stream.status == 200
                proc.send_signal(signal.SIGTERM)
                started = time.monotonic()
                assert await asyncio.wait_for(stream.content.read(), 5) == b""
        returncode = await asyncio.to_thread(proc.wait, 10)
        assert returncode == 0
        assert time.monotonic() - started < 5
        assert proc.stderr is not None
        assert f"fleetq gateway on http://127.0.0.1:{port}" in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
