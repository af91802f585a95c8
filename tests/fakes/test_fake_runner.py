"""Several instances on consecutive ports, and the blocking command-line entry points."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sys
from pathlib import Path

import pytest

from supervisor.sim.a1111 import A1111Options, serve_a1111
from supervisor.sim.comfyui import ComfyUIOptions, run_fake_comfyui, serve_comfyui
from supervisor.sim.comfyui.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def free_port_range(count: int) -> int:
    """A first port such that ``count`` consecutive loopback ports are free right now."""
    for _ in range(200):
        first = random.randint(20000, 60000)
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free port range")


async def test_serve_comfyui_on_consecutive_ports(http):
    first = free_port_range(3)
    group = await serve_comfyui("127.0.0.1", first, 3, ComfyUIOptions(history_delay_s=0.01))
    async with group:
        assert [server.port for server in group] == [first, first + 1, first + 2]
        assert [server.index for server in group] == [0, 1, 2]
        for url in group.urls:
            async with http.get(url + "/prompt") as response:
                assert await response.json() == {"exec_info": {"queue_remaining": 0}}
        assert group[1].options.history_delay_s == 0.01


async def test_serve_a1111_with_ephemeral_ports(http):
    async with await serve_a1111("127.0.0.1", 0, 2, A1111Options(webui=True)) as group:
        assert len(group) == 2 and group[0].port != group[1].port
        for url in group.urls:
            async with http.get(url + "/internal/ping") as response:
                assert await response.json() == {}


async def test_a_taken_port_stops_the_instances_already_started(http):
    first = free_port_range(2)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", first + 1))
        blocker.listen()
        with pytest.raises(OSError):
            await serve_comfyui("127.0.0.1", first, 2)
    group = await serve_comfyui("127.0.0.1", first, 1)  # the first port was released
    await group.aclose()


def test_bad_arguments_are_rejected():
    with pytest.raises(TypeError):
        run_fake_comfyui("127.0.0.1", 0, 1, no_such_option=True)
    with pytest.raises(ValueError):
        run_fake_comfyui("127.0.0.1", 0, 1, startup_mode="sometimes")
    args = build_parser().parse_args(["--port", "9000", "--count", "2", "--no-cache"])
    assert (args.port, args.count, args.no_cache) == (9000, 2, True)


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("supervisor.sim.comfyui", ["--history-delay", "0.1"]),
        ("supervisor.sim.a1111", ["--step-seconds", "0.01", "--errors", "forge"]),
    ],
)
async def test_command_line_serves_until_sigterm(http, module, extra):
    first = free_port_range(2)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, "--port", str(first), "--count", "2", *extra,
        cwd=REPO, env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    log: list[str] = []
    try:
        while sum("listening on" in line for line in log) < 2:
            line = await asyncio.wait_for(process.stderr.readline(), 20)
            assert line, "the fake exited early:\n" + "".join(log)
            log.append(line.decode())
        path = "/prompt" if module.endswith("comfyui") else "/sdapi/v1/progress"
        for port in (first, first + 1):
            async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(process.stderr.read(), 20)
        code = await asyncio.wait_for(process.wait(), 20)
    assert code == 0
    assert b"Traceback" not in rest, rest.decode()
