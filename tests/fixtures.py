"""Fixtures shared by several test folders; a folder's conftest imports the ones it uses
(``from tests.fixtures import http``), so each name means one thing wherever it appears."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from fleetq import Settings
from fleetq.worker import WorkerQueue
from supervisor.sim.a1111 import A1111Options, FakeA1111
from supervisor.sim.comfyui import ComfyUIOptions, FakeComfyUI

ComfyFactory = Callable[..., Awaitable[FakeComfyUI]]
A1111Factory = Callable[..., Awaitable[FakeA1111]]


def comfy_graph(seed: int = 0) -> dict[str, Any]:
    """The smallest ComfyUI graph the fakes run: an empty image, saved."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "color": seed}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}},
    }


#: The checkpoint :func:`txt2img` loads (give it to the fake that runs the graph).
TXT2IMG_CHECKPOINT = "sd15.safetensors"


def txt2img(steps: int, seed: int = 1, **extra_data: Any) -> dict[str, Any]:
    """ComfyUI's default text-to-image graph (as a /prompt body when ``extra_data`` is given)."""
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": TXT2IMG_CHECKPOINT}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler",
              "inputs": {"model": ["4", 0], "seed": seed, "steps": steps, "cfg": 8.0,
                         "sampler_name": "euler", "scheduler": "normal", "positive": ["6", 0],
                         "negative": ["7", 0], "latent_image": ["5", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "t"}},
    }  # fmt: skip
    return {"prompt": graph, "extra_data": extra_data} if extra_data else graph


@pytest.fixture
def graph() -> dict[str, Any]:
    return comfy_graph()


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[WorkerQueue]:
    """A worker-side queue on the test fleet (``settings`` comes from the root conftest)."""
    queue = WorkerQueue(settings)
    yield queue
    await queue.aclose()


@pytest.fixture
async def queues(settings: Settings) -> AsyncIterator[list[WorkerQueue]]:
    """Worker queues the test makes (one per simulated machine), closed after it."""
    made: list[WorkerQueue] = []
    yield made
    for queue in made:
        await queue.aclose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
async def comfy_factory() -> AsyncIterator[ComfyFactory]:
    """Start fake ComfyUI servers on free ports: ``await comfy_factory(history_delay_s=...)``."""
    started: list[FakeComfyUI] = []

    async def make(**options: Any) -> FakeComfyUI:
        server = FakeComfyUI("127.0.0.1", 0, ComfyUIOptions(**options))
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def a1111_factory() -> AsyncIterator[A1111Factory]:
    """Start fake A1111 servers on free ports (fast steps unless told otherwise)."""
    started: list[FakeA1111] = []

    async def make(**options: Any) -> FakeA1111:
        options.setdefault("step_seconds", 0.01)
        server = FakeA1111("127.0.0.1", 0, A1111Options(**options))
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()
