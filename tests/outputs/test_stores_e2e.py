"""Outputs in a shared folder or an S3 store, end to end: a real supervisor, the fake ComfyUI, a
real S3 API server on loopback; the gateway serving or redirecting; retention; a store that fails
at upload time."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import test_utils

from fleetq import AsyncClient, Settings
from fleetq.errors import OutputsExpired, OutputsInRedis, OutputStoreError
from fleetq.gateway.app import create_app
from fleetq.gateway.options import GatewayOptions
from fleetq.keys import Keys
from fleetq.outputs.location import file_path
from supervisor.app import Supervisor
from supervisor.sim.comfyui.workflows import fake_work_workflow
from supervisor.sim.png import PNG_SIGNATURE
from tests.helpers import eventually
from tests.s3server import s3_client
from tests.supervisor.conftest import make_config, running_supervisor

pytestmark = pytest.mark.slow


async def run_one_job(settings: Settings, comfy_factory: Any, seed: int) -> tuple[str, Any]:
    fakes = await comfy_factory(1)
    config = make_config(settings, "node-o", 1, {"comfyui": fakes[0].port})
    async with AsyncClient(settings) as client, running_supervisor(config):
        job = await client.submit(fake_work_workflow(0.05, 1, seed=seed))
        result = await job.wait(timeout_s=30)
    return job.id, result


async def test_outputs_go_to_the_store_and_redis_keeps_only_records(
    store_settings: Settings, comfy_factory: Any
) -> None:
    job_id, result = await run_one_job(store_settings, comfy_factory, seed=0x112233)
    [output] = result.outputs
    [record] = result.files
    assert output.data.startswith(PNG_SIGNATURE)
    digest = hashlib.sha256(output.data).hexdigest()
    assert (record.size, record.sha256) == (len(output.data), digest)
    scheme = store_settings.output_store.split(":", 1)[0]
    assert record.location.startswith(f"{scheme}://")
    assert f"/{job_id}/claim-1/0-" in record.location
    keys = Keys(store_settings.namespace)
    async with aioredis.from_url(store_settings.redis_url) as r:
        assert await r.exists(keys.outputs(job_id)) == 0  # no bytes in Redis
        # One small record per output, whatever the output's size.
        assert 0 < await r.hstrlen(keys.job(job_id), "outputs") <= 512
    [url] = result.urls()
    if scheme == "file":
        assert file_path(url).read_bytes() == output.data
    else:
        async with aiohttp.ClientSession() as http, http.get(url) as answer:
            assert (answer.status, await answer.read()) == (200, output.data)


async def test_the_gateway_serves_a_file_and_redirects_to_s3(
    store_settings: Settings, comfy_factory: Any
) -> None:
    job_id, result = await run_one_job(store_settings, comfy_factory, seed=0x445566)
    app = create_app(store_settings, (), None, GatewayOptions())
    async with test_utils.TestClient(test_utils.TestServer(app)) as gw:
        answer = await gw.get(f"/v1/jobs/{job_id}/outputs/0", allow_redirects=False)
        if store_settings.output_store.startswith("file:"):
            assert answer.status == 200
            assert answer.headers["Content-Type"] == "image/png"
            assert await answer.read() == result.outputs[0].data
        else:
            assert answer.status == 302
            async with (
                aiohttp.ClientSession() as http,
                http.get(answer.headers["Location"]) as fetched,
            ):
                assert await fetched.read() == result.outputs[0].data


async def test_outputs_in_redis_have_no_url(settings: Settings, comfy_factory: Any) -> None:
    _, result = await run_one_job(settings, comfy_factory, seed=7)
    assert result.files[0].location == "redis"
    with pytest.raises(OutputsInRedis):
        result.urls()


async def test_expired_outputs_are_removed_from_the_shared_folder(
    file_settings: Settings, comfy_factory: Any
) -> None:
    settings = file_settings.with_overrides(output_ttl_s=2)
    fakes = await comfy_factory(1)
    config = make_config(settings, "node-r", 1, {"comfyui": fakes[0].port})
    async with AsyncClient(settings) as client, running_supervisor(config):
        job = await client.submit(fake_work_workflow(0.05, 1, seed=9))
        result = await job.wait(timeout_s=30)
        path = file_path(result.files[0].location)
        assert path.is_file()
        # The supervisor's sweeper removes the expiry folder once its time has passed.
        await eventually(lambda: not path.exists(), "the expired output to be removed")
        with pytest.raises(OutputsExpired):
            await job.result()


async def test_a_store_failing_at_upload_requeues_without_charge(
    s3_settings: Settings, s3_endpoint: str, comfy_factory: Any
) -> None:
    settings = s3_settings.with_overrides(max_infra_faults=1000)
    bucket = settings.output_store.split("/")[2]
    fakes = await comfy_factory(1)
    config = make_config(settings, "node-f", 1, {"comfyui": fakes[0].port})
    async with AsyncClient(settings) as client, running_supervisor(config):
        s3_client(s3_endpoint).delete_bucket(Bucket=bucket)  # the store goes away mid-life
        job = await client.submit(fake_work_workflow(0.05, 1, seed=11))
        faulted = await eventually(
            lambda: _infra_faulted(job), "an output store fault to requeue the job"
        )
        assert faulted.attempts == 0
        first = faulted.timeline[0]
        assert first.outcome == "requeued"
        assert "cannot upload output" in (first.detail or "")
        s3_client(s3_endpoint).create_bucket(Bucket=bucket)  # and comes back
        result = await job.wait(timeout_s=30)
        assert result.outputs[0].data.startswith(PNG_SIGNATURE)
        assert (await job.status()).attempts == 0


async def _infra_faulted(job: Any) -> Any:
    status = await job.status()
    return status if status.infra_faults >= 1 else None


async def test_a_bad_store_stops_the_supervisor_at_start(
    settings: Settings, tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    bad = [
        settings.with_overrides(output_store=(blocker / "outputs").as_uri()),
        settings.with_overrides(
            output_store="s3://no-such-bucket/x", s3_endpoint_url=s3_endpoint, s3_region="us-east-1"
        ),
    ]
    for each in bad:
        supervisor = Supervisor(make_config(each, "node-x", 1, {"comfyui": 1}))
        with pytest.raises(OutputStoreError, match="output store"):
            await supervisor.run()
