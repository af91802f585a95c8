"""Live previews end to end: a real supervisor drives the fake ComfyUI and the fake A1111 (real
servers), previews land in Redis and reach ``on_progress``, ``client.preview``, ``fleetq
status --preview`` and the gateway; they expire, are gone once the job ends, are never
outputs, and frames over the cap are skipped."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils, web

from fleetq import AsyncClient, Client, JobStatus, Settings
from fleetq.gateway.app import create_app
from fleetq.gateway.options import GatewayOptions
from fleetq.keys import Keys
from supervisor.sim.group import FakeGroup
from tests.fixtures import TXT2IMG_CHECKPOINT as CKPT
from tests.fixtures import txt2img

from .conftest import eventually, make_config, running_supervisor  # type: ignore[import-not-found]

pytestmark = pytest.mark.slow
Start = Callable[[int], Awaitable[FakeGroup[Any]]]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Steps enough for a job to outlast the checks; the test then speeds the sampler up.
LONG = 600


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[test_utils.TestClient[Any, Any]]:
    app: web.Application = create_app(settings, (), None, GatewayOptions())
    client: test_utils.TestClient[Any, Any] = test_utils.TestClient(test_utils.TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def fleetq_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEETQ_REDIS_URL": settings.redis_url}
    return subprocess.run(
        [sys.executable, "-m", "fleetq.cli.main", "--namespace", settings.namespace, *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


async def _preview_of(client: AsyncClient, job_id: str) -> Any:
    return await client.preview(job_id)


async def _stream_types(settings: Settings, client: AsyncClient, job_id: str) -> list[str]:
    entries = await client.store.command("xrange", Keys(settings.namespace).job_events(job_id))
    return [fields[b"type"].decode() for _, fields in entries]


async def test_comfyui_previews_reach_every_client_surface_and_leave_with_the_job(
    settings: Settings, comfy_factory: Start, tmp_path: Path
) -> None:
    fakes = await comfy_factory(1)
    fake = fakes[0]
    fake.configure(checkpoints=(CKPT,), preview_method="auto", sampler_step_s=0.05)
    fleet = settings.with_overrides(preview_interval_ms=50)
    config = make_config(fleet, "m1", 1, {"comfyui": fake.port})
    async with running_supervisor(config), AsyncClient(fleet) as aclient, gateway(fleet) as gw:
        job = await aclient.submit(txt2img(LONG))
        seen: list[JobStatus] = []
        with Client(fleet) as client:
            waiting = asyncio.create_task(
                asyncio.to_thread(client.get(job.id).wait, 60, seen.append)
            )
            preview = await eventually(lambda: _preview_of(aclient, job.id), "a live preview")
            assert preview.content_type == "image/png" and preview.data.startswith(PNG_MAGIC)

            # The command line writes it to a file.
            target = tmp_path / "live.png"
            done = await asyncio.to_thread(
                fleetq_cli, fleet, "status", job.id, "--preview", str(target)
            )
            assert done.returncode == 0, done.stderr
            assert "running" in done.stdout and f"written to {target}" in done.stderr
            assert target.read_bytes().startswith(PNG_MAGIC)

            # The gateway serves it, and its job stream announces the next ones.
            async with gw.get(f"/v1/jobs/{job.id}/preview") as r:
                assert r.status == 200 and r.headers["Content-Type"] == "image/png"
                assert (await r.read()).startswith(PNG_MAGIC)

            await eventually(lambda: any(s.preview for s in seen), "a preview on on_progress")
            fake.configure(sampler_step_s=0.0)  # let the job finish
            result = await waiting

    with_preview = [s for s in seen if s.preview is not None]
    assert with_preview and all(s.state.value == "running" for s in with_preview)
    assert all(s.preview.data.startswith(PNG_MAGIC) for s in with_preview)  # type: ignore[union-attr]
    # Gone with the run, and never an output.
    async with AsyncClient(fleet) as aclient:
        assert await aclient.preview(job.id) is None
        assert "preview" in await _stream_types(fleet, aclient, job.id)
    assert [o.filename for o in result.outputs] == ["t_00001_.png"]
    previews = {s.preview.data for s in with_preview}  # type: ignore[union-attr]
    assert not previews & {o.data for o in result.outputs}
    after = await asyncio.to_thread(fleetq_cli, fleet, "status", job.id, "--preview", "x.png")
    assert after.returncode == 1 and "no live preview" in after.stderr
    assert "not running" in after.stderr


async def test_a1111_previews_reach_on_progress(settings: Settings, a1111_factory: Start) -> None:
    fakes = await a1111_factory(1)
    fake = fakes[0]
    await fake.set_settings({"show_progress_every_n_steps": 1})
    fake.configure(step_seconds=0.05)
    config = make_config(settings, "m1", 1, {"a1111": fake.port})
    async with running_supervisor(config), AsyncClient(settings) as aclient:
        # 80 steps of 0.05 s: several progress polls (every 0.5 s) see a new current image.
        job = await aclient.submit({"prompt": "a lighthouse", "steps": 80}, service="a1111")
        seen: list[JobStatus] = []
        waiting = asyncio.create_task(job.wait(60, seen.append))
        await eventually(lambda: any(s.preview for s in seen), "a preview on on_progress")
        preview = await aclient.preview(job.id)
        assert preview is not None and preview.data.startswith(PNG_MAGIC)
        result = await waiting
        assert await aclient.preview(job.id) is None
    shown = {s.preview.data for s in seen if s.preview is not None}
    assert shown and not shown & {o.data for o in result.outputs}


async def test_a_preview_expires_while_the_backend_sends_no_new_one(
    settings: Settings, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    fake = fakes[0]
    fake.configure(checkpoints=(CKPT,), preview_method="auto", sampler_step_s=0.05)
    fleet = settings.with_overrides(preview_ttl_ms=300)
    config = make_config(fleet, "m1", 1, {"comfyui": fake.port})
    async with running_supervisor(config), AsyncClient(fleet) as aclient:
        job = await aclient.submit(txt2img(LONG, seed=2))
        await eventually(lambda: _preview_of(aclient, job.id), "a live preview")
        fake.configure(sampler_step_s=2.5)  # the sampler stalls: no new frame comes
        await eventually(lambda: _no_preview(aclient, job.id), "the preview to expire")
        assert (await aclient.status(job.id)).state.value == "running"
        await aclient.cancel(job.id)
        await eventually(lambda: _state(aclient, job.id, "cancelled"), "the cancel")


async def _no_preview(client: AsyncClient, job_id: str) -> bool:
    return await client.preview(job_id) is None


async def _state(client: AsyncClient, job_id: str, state: str) -> bool:
    return bool((await client.status(job_id)).state.value == state)


async def test_frames_over_the_cap_are_skipped_and_the_job_completes(
    settings: Settings, comfy_factory: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="supervisor.execution")
    fakes = await comfy_factory(1)
    fake = fakes[0]
    fake.configure(checkpoints=(CKPT,), preview_method="auto", sampler_step_s=0.01)
    fleet = settings.with_overrides(preview_max_bytes=64)  # the fake's previews are larger
    config = make_config(fleet, "m1", 1, {"comfyui": fake.port})
    async with running_supervisor(config), AsyncClient(fleet) as aclient:
        job = await aclient.submit(txt2img(20, seed=3))
        result = await job.wait(30)
        assert [o.filename for o in result.outputs] == ["t_00001_.png"]
        assert "preview" not in await _stream_types(fleet, aclient, job.id)
    assert f"job {job.id}: skipping live previews over 64 bytes" in caplog.text
