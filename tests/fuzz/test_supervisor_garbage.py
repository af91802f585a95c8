"""A real supervisor (in-process, one simulated GPU) in front of a backend that answers garbage:
the job ends with a reason, the supervisor keeps running, and once the backend is healthy the
next job completes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fuzz_servers import GRAPH, FakeComfy, raw, serving

from fleetq import AsyncClient, Settings
from fleetq.model import JobState
from supervisor.app import Supervisor
from supervisor.config import BackendSpec, SupervisorConfig

pytestmark = pytest.mark.slow
DEEP = b"[" * 100_000 + b"]" * 100_000


@asynccontextmanager
async def fleet(redis_url: str, fake: FakeComfy) -> AsyncIterator[AsyncClient]:
    settings = Settings(redis_url=redis_url, namespace="sg-" + uuid.uuid4().hex[:8],
                        socket_timeout_s=5.0, block_timeout_s=0.5)  # fmt: skip
    async with serving(fake.app()) as url:
        backends = (BackendSpec("comfyui", url),)
        config = SupervisorConfig(settings=settings, host_id="garbage", backends=backends,
                                  simulate_gpus=1)  # fmt: skip
        supervisor = Supervisor(config)
        task = asyncio.create_task(supervisor.run(), name="supervisor-garbage")
        try:
            await asyncio.wait_for(supervisor.ready.wait(), 30)
            async with AsyncClient(settings) as client:
                yield client
            assert not task.done(), "the supervisor kept running"
        finally:
            supervisor.request_stop()
            supervisor.request_stop()
            await asyncio.wait_for(task, 60)
    assert task.result() == 0


async def settled(client: AsyncClient, job: Any, timeout_s: float = 30) -> Any:
    async def terminal() -> Any:
        while True:
            status = await client.status(job.id)
            if status.is_terminal:
                return status
            await asyncio.sleep(0.05)  # the supervisor works; the test watches

    return await asyncio.wait_for(terminal(), timeout_s)


async def test_adapter_error_fails_the_job_with_a_reason_and_the_fleet_goes_on(
    redis_url: str,
) -> None:
    fake = FakeComfy(overrides={("POST", "/prompt"): raw(200, DEEP)})
    async with fleet(redis_url, fake) as client:
        bad = await client.submit(GRAPH, max_attempts=1)
        status = await settled(client, bad)
        assert status.state is JobState.FAILED
        assert status.error is not None and status.error.message
        fake.overrides.clear()  # the backend is healthy again
        good = await client.submit(GRAPH)
        assert (await settled(client, good)).state is JobState.COMPLETED


async def test_garbage_that_passes_the_probe_does_not_spin(redis_url: str) -> None:
    fake = FakeComfy(overrides={("POST", "/prompt"): raw(200, b"<html>bad gateway</html>")})
    async with fleet(redis_url, fake) as client:
        job = await client.submit(GRAPH, max_attempts=1)
        await asyncio.sleep(2.0)  # watching a rate: there is no event for "not spinning"
        status = await client.status(job.id)
        assert status.claims <= 20, f"{status.claims} claims in 2 s"
