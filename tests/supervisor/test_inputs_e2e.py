"""Input files end to end: real Redis, the real supervisor, fake ComfyUI and A1111 servers.

A job's files travel in Redis with it; the supervisor that claims it uploads them to ComfyUI
(per-job subfolder) or inlines them for A1111, and the backend really reads them: the fake
ComfyUI's ``LoadImage`` passes on the size and colour of the file it loaded, the fake A1111
decodes ``init_images`` and refuses what is not an image.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fleetq import AsyncClient, JobFailed, Settings
from fleetq.demo.processes import consecutive_free_ports
from supervisor.backends.base import BackendUnavailable
from supervisor.backends.comfyui import ComfyUIBackend
from supervisor.backends.options import ComfyUIOptions
from supervisor.config import BackendSpec, SupervisorConfig
from supervisor.sim.comfyui import FakeComfyUI
from supervisor.sim.group import FakeGroup
from supervisor.sim.png import encode_solid_png, png_first_pixel, png_size

from .conftest import eventually, make_config, running_supervisor  # type: ignore[import-not-found]

pytestmark = pytest.mark.slow
Start = Callable[[int], Awaitable[FakeGroup[Any]]]


def load_and_save(name: str, *, work_s: float = 0.0, mask: str | None = None) -> dict[str, Any]:
    graph: dict[str, Any] = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "in"}},
    }
    graph["2"] = {
        "class_type": "FakeWork",
        "inputs": {"image": ["1", 0], "seconds": work_s, "steps": 1, "outcome": "ok"},
    }
    if mask is not None:
        graph["4"] = {"class_type": "LoadImageMask", "inputs": {"image": mask, "channel": "red"}}
        graph["5"] = {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}}
        graph["6"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}
    return graph


def comfy_config(settings: Settings, port: int, **options: Any) -> SupervisorConfig:
    spec = BackendSpec("comfyui", f"http://127.0.0.1:{port}", options=ComfyUIOptions(**options))
    return SupervisorConfig(settings=settings, host_id="m1", backends=(spec,), simulate_gpus=1)


def uploads(fake: FakeComfyUI) -> list[str]:
    root = fake.files.base / "input" / "fleetq"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_a_comfyui_job_loads_its_own_input(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start, tmp_path: Path
) -> None:
    fakes = await comfy_factory(1)
    photo = tmp_path / "photo.png"
    photo.write_bytes(encode_solid_png(40, 24, (250, 20, 30)))
    mask = encode_solid_png(40, 24, (255, 255, 255))
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": fakes[0].port})):
        job = await aclient.submit(
            load_and_save("photo.png", mask="mask.png"),
            inputs={"photo.png": photo, "mask.png": mask},
        )
        result = await job.wait(timeout_s=20)
    image = result.outputs[0].data
    assert png_size(image) == (40, 24) and png_first_pixel(image) == (250, 20, 30)
    # Uploaded under the job's own subfolder, and left there: no input_dir was configured.
    assert uploads(fakes[0]) == [f"{job.id}/mask.png", f"{job.id}/photo.png"]
    assert (fakes[0].files.base / "input" / "fleetq" / job.id / "photo.png").read_bytes() == (
        photo.read_bytes()
    )


async def test_uploads_are_removed_when_the_input_folder_is_known(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    input_dir = str(fakes[0].files.base / "input")
    async with running_supervisor(comfy_config(settings, fakes[0].port, input_dir=input_dir)):
        job = await aclient.submit(
            load_and_save("p.png"), inputs={"p.png": encode_solid_png(8, 8, (1, 2, 3))}
        )
        result = await job.wait(timeout_s=20)
        assert png_first_pixel(result.outputs[0].data) == (1, 2, 3)
        await eventually(lambda: _async(not (Path(input_dir) / "fleetq" / job.id).exists()))


async def _async(value: bool) -> bool:
    return value


async def test_same_named_inputs_of_concurrent_jobs_never_collide(
    comfy_factory: Start,
) -> None:
    """Two adapters drive one instance at once; both jobs carry a different ``photo.png``.
    Both are uploaded before either prompt runs, so a shared name would hand both prompts the
    same file."""
    fakes = await comfy_factory(1)
    url = fakes[0].url
    colours = [(200, 0, 0), (0, 0, 200)]
    backends = [ComfyUIBackend(url) for _ in colours]
    try:
        results = await asyncio.gather(
            *(
                backend.run(
                    job_id,
                    load_and_save("photo.png", work_s=0.3),
                    lambda _p, _t: None,
                    {"photo.png": encode_solid_png(16, 16, colour)},
                )
                for backend, job_id, colour in zip(
                    backends, ("a" * 16, "b" * 16), colours, strict=True
                )
            )
        )
    finally:
        for backend in backends:
            await backend.aclose()
    assert [png_first_pixel(r.outputs[0].data) for r in results] == colours
    assert uploads(fakes[0]) == [f"{'a' * 16}/photo.png", f"{'b' * 16}/photo.png"]


async def test_an_a1111_img2img_job_gets_its_init_image(
    settings: Settings, aclient: AsyncClient, a1111_factory: Start
) -> None:
    fakes = await a1111_factory(1)
    body = {"prompt": "a red cat", "steps": 4, "init_images": ["photo.png"], "mask": "mask.png"}
    async with running_supervisor(make_config(settings, "m1", 1, {"a1111": fakes[0].port})):
        job = await aclient.submit(
            body,
            service="a1111",
            inputs={
                "photo.png": encode_solid_png(64, 64, (9, 9, 9)),
                "mask.png": encode_solid_png(64, 64, (255, 255, 255)),
            },
        )
        result = await job.wait(timeout_s=20)
        assert result.outputs and result.outputs[0].data.startswith(b"\x89PNG")

        # A file that only looks like an image: A1111 refuses it ("Invalid encoded image"),
        # a fault of the job, reported with A1111's reason and not retried.
        bad = await aclient.submit(
            {"prompt": "x", "steps": 2, "init_images": ["bad.png"]},
            service="a1111",
            inputs={"bad.png": b"\x89PNG\r\n\x1a\n" + b"garbage"},
            max_attempts=3,
        )
        with pytest.raises(JobFailed, match="Invalid encoded image"):
            await bad.wait(timeout_s=20)
        assert (await bad.status()).attempts == 1


async def test_a_failed_upload_requeues_without_charging_an_attempt(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    """The upload fails on m1 (ComfyUI answers 500): an infrastructure fault, no attempt
    charged. The job then runs on another machine, m2, with its input intact from Redis."""
    broken, healthy = await comfy_factory(1), await comfy_factory(1)
    broken[0].configure(upload_status=500)
    job = await aclient.submit(
        load_and_save("p.png"), inputs={"p.png": encode_solid_png(8, 8, (5, 6, 7))}
    )
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": broken[0].port})):

        async def faulted() -> bool:
            return (await job.status()).infra_faults >= 1

        await eventually(faulted)
    async with running_supervisor(make_config(settings, "m2", 1, {"comfyui": healthy[0].port})):
        result = await job.wait(timeout_s=30)
    status = await job.status()
    assert status.attempts == 0 and status.host == "m2"
    assert png_first_pixel(result.outputs[0].data) == (5, 6, 7)
    assert not (broken[0].files.base / "input" / "fleetq").exists()


async def test_a_file_comfyui_refuses_fails_the_job_with_its_reason(
    settings: Settings, aclient: AsyncClient, comfy_factory: Start
) -> None:
    fakes = await comfy_factory(1)
    fakes[0].configure(max_upload_size=1000)
    async with running_supervisor(make_config(settings, "m1", 1, {"comfyui": fakes[0].port})):
        job = await aclient.submit(
            load_and_save("big.png"),
            inputs={"big.png": encode_solid_png(8, 8, (0, 0, 0)) + b"\0" * 4000},
            max_attempts=3,
        )
        with pytest.raises(JobFailed, match=r"refused input 'big.png': HTTP 413"):
            await job.wait(timeout_s=20)
    assert (await job.status()).attempts == 1
    assert not (fakes[0].files.base / "input" / "fleetq").exists()


async def test_an_unreachable_comfyui_makes_the_upload_an_infrastructure_fault() -> None:
    port = consecutive_free_ports(1)  # nothing listens there
    backend = ComfyUIBackend(f"http://127.0.0.1:{port}", request_timeout_s=2)
    try:
        with pytest.raises(BackendUnavailable, match=r"uploading input 'p\.png'"):
            await backend.run(
                "c" * 16, load_and_save("p.png"), lambda _p, _t: None,
                {"p.png": encode_solid_png(4, 4, (0, 0, 0))},
            )  # fmt: skip
    finally:
        await backend.aclose()
