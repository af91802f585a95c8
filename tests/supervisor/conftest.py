"""Fixtures for supervisor tests: fake backends as real servers, supervisors in-process or as
separate processes, and a helper that waits for a condition instead of sleeping."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from fleetq import Settings
from fleetq.demo.processes import consecutive_free_ports
from supervisor.app import Supervisor
from supervisor.config import BackendSpec, SupervisorConfig
from supervisor.sim.a1111 import serve_a1111
from supervisor.sim.comfyui import serve_comfyui
from supervisor.sim.group import FakeGroup
from tests.fixtures import queues  # noqa: F401 (fixture)
from tests.helpers import eventually as eventually  # re-exported for the tests here

T = TypeVar("T")
LOG_DIR = os.environ.get("FLEETQ_TEST_LOG_DIR", tempfile.gettempdir())


@pytest.fixture
async def comfy_factory() -> AsyncIterator[Callable[[int], Awaitable[FakeGroup[Any]]]]:
    groups: list[FakeGroup[Any]] = []

    async def start(count: int) -> FakeGroup[Any]:
        group = await serve_comfyui("127.0.0.1", consecutive_free_ports(count), count)
        groups.append(group)
        return group

    yield start
    for group in groups:
        await group.aclose()


@pytest.fixture
async def a1111_factory() -> AsyncIterator[Callable[[int], Awaitable[FakeGroup[Any]]]]:
    groups: list[FakeGroup[Any]] = []

    async def start(count: int) -> FakeGroup[Any]:
        group = await serve_a1111("127.0.0.1", consecutive_free_ports(count), count)
        groups.append(group)
        return group

    yield start
    for group in groups:
        await group.aclose()


def make_config(
    settings: Settings, host: str, gpus: int, backends: dict[str, int], **overrides: Any
) -> SupervisorConfig:
    """``backends`` maps a service to the first port of its instances (one per GPU)."""
    specs = tuple(
        BackendSpec(service, f"http://127.0.0.1:{{port:{port}}}")
        for service, port in backends.items()
    )
    return SupervisorConfig(settings=settings, host_id=host, backends=specs, simulate_gpus=gpus,
                            **overrides)  # fmt: skip


@asynccontextmanager
async def running_supervisor(config: SupervisorConfig) -> AsyncIterator[Supervisor]:
    supervisor = Supervisor(config)
    task = asyncio.create_task(supervisor.run(), name=f"supervisor-{config.host_id}")
    ready = asyncio.create_task(supervisor.ready.wait())
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()
        raise AssertionError("supervisor exited at start")
    try:
        yield supervisor
    finally:
        supervisor.request_stop()
        supervisor.request_stop()
        await asyncio.wait_for(task, 30)


def supervisor_process(
    settings: Settings,
    host: str,
    gpus: int,
    backend: str,
    *extra: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``fleetq supervisor`` as its own process (for SIGKILL and SIGTERM tests)."""
    environment = {**os.environ, "FLEETQ_LOG_LEVEL": "INFO", **(env or {})}
    # The log goes to a file (a pipe nobody reads would block the child once full).
    log = open(os.path.join(LOG_DIR, f"supervisor-{host}.log"), "ab")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "fleetq.cli.main", "--redis", settings.redis_url, "--namespace",
         settings.namespace, "supervisor", "--simulate-gpus", str(gpus), "--host-id", host,
         "--backend", backend, *extra],
        env=environment, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
