"""A supervisor SIGKILLed mid-job or mid-upload and its job requeued: the outputs still end
intact, written by the claim that completed."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from typing import Any

import pytest

from fleetq import AsyncClient, Settings
from fleetq.outputs.files import SLOT_PREFIX
from fleetq.outputs.location import parse_store_url
from supervisor.sim.comfyui.workflows import fake_work_workflow
from supervisor.sim.png import PNG_SIGNATURE
from tests.helpers import eventually
from tests.s3server import S3_ENV
from tests.supervisor.conftest import supervisor_process

pytestmark = pytest.mark.slow


def store_env(settings: Settings) -> dict[str, str]:
    env = {"FLEETQ_LEASE_MS": "1500", "FLEETQ_OUTPUT_STORE": settings.output_store}
    if settings.s3_endpoint_url:
        env |= {**S3_ENV, "FLEETQ_S3_ENDPOINT_URL": settings.s3_endpoint_url,
                "FLEETQ_S3_REGION": settings.s3_region}  # fmt: skip
    return env


async def test_outputs_are_intact_after_a_sigkill_and_requeue(
    store_settings: Settings, comfy_factory: Any
) -> None:
    settings = store_settings
    fakes = await comfy_factory(2)
    env = store_env(settings)
    a = supervisor_process(settings, "node-a", 1, f"comfyui=http://127.0.0.1:{fakes[0].port}",
                           env=env)  # fmt: skip
    b = None
    try:
        async with AsyncClient(settings) as client:
            job = await client.submit(fake_work_workflow(3.0, 6, seed=77, width=96, height=80))

            async def running_on_a() -> bool:
                status = await job.status()
                return status.state.value == "running" and status.host == "node-a"

            await eventually(running_on_a, "the job to run on node-a", timeout_s=30)
            a.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(a.wait, 30) == -signal.SIGKILL
            url = parse_store_url(settings.output_store)
            if url.kind == "file":
                # What a kill in the middle of an upload leaves: a temporary file of claim 1.
                claim_1 = url.folder / settings.namespace / f"{SLOT_PREFIX}9999999999" / job.id
                (claim_1 / "claim-1").mkdir(parents=True)
                (claim_1 / "claim-1" / ".0-fleetq_00001_.png.dead.part").write_bytes(b"\x89PN")
            backend_b = f"comfyui=http://127.0.0.1:{fakes[1].port}"
            b = supervisor_process(settings, "node-b", 1, backend_b, env=env)
            result = await job.wait(timeout_s=60)
            status = await job.status()
        assert (status.host, status.claims, status.attempts) == ("node-b", 2, 0)
        [output] = result.outputs
        [record] = result.files
        assert output.data.startswith(PNG_SIGNATURE)
        assert record.sha256 == hashlib.sha256(output.data).hexdigest()
        assert record.size == len(output.data)
        assert f"/{job.id}/claim-2/" in record.location  # the completing claim's record
    finally:
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


class StallingS3:
    """An S3 endpoint that answers HEAD (the supervisor's start check) and swallows every PUT:
    an upload stays in flight until the uploader is killed."""

    def __init__(self) -> None:
        self.put_seen = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                while (await reader.readline()).strip():
                    pass  # headers
                if line.startswith(b"PUT "):
                    self.put_seen.set()
                    while await reader.read(65536):
                        pass  # take the body, never answer
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def aclose(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_a_supervisor_killed_mid_upload_leaves_intact_outputs(
    s3_settings: Settings, comfy_factory: Any
) -> None:
    settings = s3_settings
    fakes = await comfy_factory(2)
    stalling = StallingS3()
    env_a = store_env(settings) | {"FLEETQ_S3_ENDPOINT_URL": await stalling.start()}
    a = supervisor_process(settings, "node-a", 1, f"comfyui=http://127.0.0.1:{fakes[0].port}",
                           env=env_a)  # fmt: skip
    b = None
    try:
        async with AsyncClient(settings) as client:
            job = await client.submit(fake_work_workflow(0.05, 1, seed=78, width=200, height=120))
            await asyncio.wait_for(stalling.put_seen.wait(), 30)  # node-a is mid-upload
            status = await job.status()
            assert (status.state.value, status.host) == ("running", "node-a")
            a.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(a.wait, 30) == -signal.SIGKILL
            backend_b = f"comfyui=http://127.0.0.1:{fakes[1].port}"
            b = supervisor_process(settings, "node-b", 1, backend_b, env=store_env(settings))
            result = await job.wait(timeout_s=60)
            status = await job.status()
        assert (status.host, status.claims, status.attempts) == ("node-b", 2, 0)
        [output] = result.outputs
        [record] = result.files
        assert output.data.startswith(PNG_SIGNATURE)
        assert record.sha256 == hashlib.sha256(output.data).hexdigest()
        assert f"/{job.id}/claim-2/" in record.location
    finally:
        await stalling.aclose()
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
