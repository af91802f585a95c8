"""Live previews from the adapters: ComfyUI's binary preview frames and A1111's current_image,
against the fakes as real servers; and frames that are not previews never break a run."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from typing import Any

import pytest
from backends_testkit import PNG_MAGIC, ProgressLog

from supervisor.backends.a1111 import A1111Backend
from supervisor.backends.comfyui import ComfyUIBackend
from supervisor.backends.comfyui_previews import PreviewFrame, parse_binary_frame
from supervisor.sim.a1111 import FakeA1111
from supervisor.sim.comfyui import FakeComfyUI
from supervisor.sim.png import encode_solid_png
from tests.fixtures import TXT2IMG_CHECKPOINT as CKPT
from tests.fixtures import txt2img

PNG = encode_solid_png(8, 8, (10, 20, 30))
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


class PreviewLog:
    """A ``PreviewSink`` that keeps every image it is handed."""

    def __init__(self) -> None:
        self.images: list[tuple[bytes, str]] = []

    def __call__(self, data: bytes, content_type: str) -> None:
        self.images.append((data, content_type))


# -- the frame layout ---------------------------------------------------------------------


def _meta_frame(metadata: Any, image: bytes) -> bytes:
    header = json.dumps(metadata).encode()
    return struct.pack(">II", 4, len(header)) + header + image


def test_both_preview_formats_parse_and_the_bytes_decide_the_type() -> None:
    assert parse_binary_frame(struct.pack(">II", 1, 2) + PNG) == PreviewFrame(PNG, "image/png")
    # Declared JPEG but the bytes are PNG: the bytes win.
    assert parse_binary_frame(struct.pack(">II", 1, 1) + PNG) == PreviewFrame(PNG, "image/png")
    frame = parse_binary_frame(_meta_frame({"prompt_id": "p1", "node_id": "3"}, JPEG))
    assert frame == PreviewFrame(JPEG, "image/jpeg", "p1", "3")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x00\x00\x01",  # no format
        struct.pack(">II", 1, 7) + PNG,  # unknown format
        struct.pack(">II", 1, 2) + b"not an image",
        struct.pack(">II", 1, 2),  # no image at all
        struct.pack(">II", 3, 1) + b"3" + b"some text",  # a TEXT frame
        struct.pack(">II", 2, 2) + PNG,  # UNENCODED_PREVIEW_IMAGE is never sent
        struct.pack(">II", 4, 1000) + b"{}",  # metadata longer than the frame
        struct.pack(">II", 4, 2**31) + b"{}",
        struct.pack(">II", 4, 3) + b"{x}" + PNG,  # metadata is not JSON
        _meta_frame(["a list"], PNG),
        _meta_frame({"prompt_id": "p"}, b"GIF"),
        struct.pack(">I", 99) + PNG,
    ],
)
def test_malformed_or_foreign_binary_frames_are_not_previews(payload: bytes) -> None:
    assert parse_binary_frame(payload) is None


# -- ComfyUI ------------------------------------------------------------------------------


async def test_comfyui_sampler_previews_reach_the_sink_tagged_with_the_prompt(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI
) -> None:
    comfy_server.configure(checkpoints=(CKPT,), preview_method="auto")
    previews = PreviewLog()
    result = await comfyui.run("job-1", txt2img(steps=4), ProgressLog(), preview=previews)
    # One preview per sampler step, PNG from the fake, scaled to the 512 preview size.
    assert len(previews.images) == 4
    # The adapter announced supports_preview_metadata, so each frame named its prompt.
    assert comfyui.client_id is not None
    assert comfy_server.hub.supports(comfyui.client_id, "supports_preview_metadata")
    assert {content_type for _, content_type in previews.images} == {"image/png"}
    assert all(data.startswith(PNG_MAGIC) for data, _ in previews.images)
    assert len({data for data, _ in previews.images}) == 4  # the image forms step by step
    # A preview is never an output.
    assert [o.filename for o in result.outputs] == ["t_00001_.png"]
    assert all(o.data not in {data for data, _ in previews.images} for o in result.outputs)


async def test_comfyui_sends_no_previews_with_the_default_preview_method(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI
) -> None:
    comfy_server.configure(checkpoints=(CKPT,))  # --preview-method none, ComfyUI's default
    previews = PreviewLog()
    await comfyui.run("job-1", txt2img(steps=3), ProgressLog(), preview=previews)
    assert previews.images == []
    # A workflow may ask for them itself (newer ComfyUI reads extra_data.preview_method).
    await comfyui.run(
        "job-2", txt2img(3, 2, preview_method="auto"), ProgressLog(), preview=previews
    )
    assert len(previews.images) == 3


async def test_comfyui_malformed_binary_frames_do_not_break_the_run(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI
) -> None:
    comfy_server.configure(checkpoints=(CKPT,), preview_method="auto", sampler_step_s=0.1)
    previews = PreviewLog()
    progress = ProgressLog()
    run = asyncio.create_task(comfyui.run("job-1", txt2img(steps=6), progress, preview=previews))
    await progress.wait_text("KSampler")
    sid = comfyui.client_id
    junk = [
        (1, b"\x00\x00\x00\x07junk"),
        (1, struct.pack(">I", 2) + b"not a png"),
        (4, struct.pack(">I", 5000) + b"{}"),
        (4, struct.pack(">I", 3) + b"{x}" + PNG),
        (3, struct.pack(">I", 1) + b"3hello"),
        (77, b""),
    ]
    for event, payload in junk:
        comfy_server.hub.send(event, payload, sid)
    # A well-formed preview of another prompt is not this job's.
    other = json.dumps({"prompt_id": "someone-else", "node_id": "3"}).encode()
    comfy_server.hub.send(4, struct.pack(">I", len(other)) + other + PNG, sid)
    result = await asyncio.wait_for(run, 10)
    assert [o.filename for o in result.outputs] == ["t_00001_.png"]
    assert len(previews.images) == 6  # the sampler's six, nothing of the junk
    assert PNG not in {data for data, _ in previews.images}


async def test_comfyui_adapter_without_a_preview_sink_runs_as_before(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI
) -> None:
    comfy_server.configure(checkpoints=(CKPT,), preview_method="auto")
    result = await comfyui.run("job-1", txt2img(steps=2), ProgressLog())
    assert len(result.outputs) == 1


@pytest.mark.parametrize("announce", [False, True])
async def test_fake_comfyui_frame_format_follows_the_feature_flags(
    comfy_server: FakeComfyUI, http: Any, announce: bool
) -> None:
    """As ComfyUI: format 4 (metadata naming the prompt) to a socket that announced
    ``supports_preview_metadata``, format 1 otherwise; sent with the step's progress."""
    comfy_server.configure(checkpoints=(CKPT,), preview_method="auto")
    async with http.ws_connect(f"{comfy_server.url.replace('http', 'ws')}/ws?clientId=c1") as ws:
        await ws.receive_json()  # status
        if announce:
            await ws.send_json(
                {"type": "feature_flags", "data": {"supports_preview_metadata": True}}
            )
            assert (await ws.receive_json())["type"] == "feature_flags"
        body = {"prompt": txt2img(steps=2), "client_id": "c1"}
        async with http.post(f"{comfy_server.url}/prompt", json=body) as response:
            prompt_id = (await response.json())["prompt_id"]
        frames: list[bytes] = []
        while True:
            message = await ws.receive(timeout=10)
            if message.type.name == "BINARY":
                frames.append(message.data)
                continue
            data = json.loads(message.data)
            if data["type"] == "executing" and data["data"].get("node") is None:
                break
    assert len(frames) == 2
    for frame in frames:
        (event,) = struct.unpack_from(">I", frame)
        parsed = parse_binary_frame(frame)
        assert parsed is not None and parsed.data.startswith(PNG_MAGIC)
        assert event == (4 if announce else 1)
        assert parsed.prompt_id == (prompt_id if announce else None)


# -- A1111 ----------------------------------------------------------------------------------


async def test_a1111_current_image_reaches_the_sink_once_per_new_image(
    a1111: A1111Backend, a1111_server: FakeA1111
) -> None:
    await a1111_server.set_settings({"show_progress_every_n_steps": 1})
    a1111_server.configure(step_seconds=0.1)
    previews = PreviewLog()
    body = {"prompt": "a lighthouse", "steps": 8, "width": 512, "height": 512}
    result = await a1111.run("job-1", body, ProgressLog(), preview=previews)
    assert previews.images, "no live preview was handed on"
    datas = [data for data, _ in previews.images]
    assert len(set(datas)) == len(datas)  # the same current image is never handed on twice
    assert all(ct == "image/png" and d.startswith(PNG_MAGIC) for d, ct in previews.images)
    assert all(o.data not in set(datas) for o in result.outputs)


async def test_a1111_live_previews_off_means_no_previews(
    a1111: A1111Backend, a1111_server: FakeA1111
) -> None:
    await a1111_server.set_settings({"live_previews_enable": False})
    a1111_server.configure(step_seconds=0.05)
    previews = PreviewLog()
    await a1111.run("job-1", {"prompt": "x", "steps": 20}, ProgressLog(), preview=previews)
    assert previews.images == []


async def test_fake_a1111_progress_follows_skip_current_image(
    a1111_server: FakeA1111, http: Any
) -> None:
    await a1111_server.set_settings({"show_progress_every_n_steps": 2})
    a1111_server.configure(step_seconds=0.1)
    url = a1111_server.url
    post = asyncio.create_task(
        http.post(f"{url}/sdapi/v1/txt2img", json={"prompt": "x", "steps": 10})
    )

    async def progress(skip: str | None) -> dict[str, Any]:
        params = {} if skip is None else {"skip_current_image": skip}
        async with http.get(f"{url}/sdapi/v1/progress", params=params) as response:
            return dict(await response.json())

    await a1111_server.wait_until(lambda s: s.sampling_step >= 2)
    assert (await progress("true"))["current_image"] is None
    image = (await progress(None))["current_image"]  # A1111's default: the image is sent
    assert base64.b64decode(image).startswith(PNG_MAGIC)
    response = await post
    response.release()
    assert (await progress("false"))["current_image"] is None  # idle again
