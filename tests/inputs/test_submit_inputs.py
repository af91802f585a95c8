"""Input files at submit: checked before anything is written, stored with the job atomically,
kept as long as the job."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fleetq import AsyncClient, Client, InvalidInput, PayloadTooLarge, Settings
from fleetq.inputs import sniff_content_type
from fleetq.keys import Keys
from supervisor.sim.png import encode_solid_png

PNG = encode_solid_png(8, 8, (200, 10, 10))
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 64
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\0" * 16


def load_graph(*names: str, mask: str | None = None) -> dict[str, Any]:
    graph: dict[str, Any] = {}
    for i, name in enumerate(names):
        graph[str(i + 10)] = {"class_type": "LoadImage", "inputs": {"image": name}}
    if mask is not None:
        graph["20"] = {"class_type": "LoadImageMask", "inputs": {"image": mask, "channel": "red"}}
    graph["30"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["10", 0], "filename_prefix": "x"},
    }
    return graph


def img2img(*names: str) -> dict[str, Any]:
    return {"prompt": "a cat", "steps": 4, "init_images": list(names)}


def keys_of(client: Client) -> list[bytes]:
    return sorted(client.store.redis.keys(client.store.keys.prefix + "*"))


def test_inputs_are_stored_with_the_job(client: Client, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(PNG)
    job = client.submit(load_graph("photo.png", mask="mask.jpg"),
                        inputs={"photo.png": photo, "mask.jpg": JPEG})  # fmt: skip
    k: Keys = client.store.keys
    stored = client.store.redis.hgetall(k.inputs(job.id))
    assert stored == {b"photo.png": PNG, b"mask.jpg": JPEG}
    manifest = json.loads(client.store.redis.hget(k.job(job.id), "inputs"))
    assert manifest == [
        {"name": "photo.png", "content_type": "image/png", "size": len(PNG)},
        {"name": "mask.jpg", "content_type": "image/jpeg", "size": len(JPEG)},
    ]
    # Kept as long as the job: no expiry while queued, the job's retention once it ends.
    assert client.store.redis.pttl(k.inputs(job.id)) == -1
    job.cancel()
    ttl = client.store.redis.pttl(k.inputs(job.id))
    assert 0 < ttl <= client.settings.retention_s * 1000
    # An operator retry brings them back for good.
    client.retry(job.id)
    assert client.store.redis.pttl(k.inputs(job.id)) == -1


async def test_async_client_takes_inputs(aclient: AsyncClient) -> None:
    job = await aclient.submit(img2img("a.webp"), service="a1111", inputs={"a.webp": WEBP})
    stored = await aclient.store.redis.hgetall(aclient.store.keys.inputs(job.id))
    assert stored == {b"a.webp": WEBP}


@pytest.mark.parametrize(
    ("workflow", "service", "inputs", "error", "message"),
    [
        (load_graph("../x.png"), "comfyui", {"../x.png": PNG}, InvalidInput, "plain file name"),
        (load_graph("a/x.png"), "comfyui", {"a/x.png": PNG}, InvalidInput, "plain file name"),
        (load_graph("x\n.png"), "comfyui", {"x\n.png": PNG}, InvalidInput, "control"),
        (load_graph("x.png [output]"), "comfyui", {"x.png [output]": PNG}, InvalidInput,
         "brackets"),
        (load_graph(".hidden"), "comfyui", {".hidden": PNG}, InvalidInput, "letter or digit"),
        (load_graph("x.png"), "comfyui", {"x.png": b"not an image"}, InvalidInput, "not an image"),
        (load_graph("x.png"), "comfyui", {"x.png": "x.png"}, InvalidInput, "bytes or a path"),
        (load_graph("x.png"), "comfyui", {"y.png": PNG}, InvalidInput, "not attached"),
        (load_graph("x.png"), "comfyui", {"x.png": PNG, "y.png": PNG}, InvalidInput,
         "not named by the workflow"),
        (img2img("x.png"), "a1111", None, InvalidInput, "init_images[0] names 'x.png'"),
        (img2img("x.png"), "a1111", {"x.png": PNG, "X.PNG": PNG}, InvalidInput, "twice"),
        (load_graph("x.png"), "comfyui", {"x.png": PNG + b"\0" * 2048}, PayloadTooLarge,
         "FLEETQ_MAX_INPUT_BYTES"),
    ],
)  # fmt: skip
def test_bad_inputs_are_refused_and_write_nothing(
    settings: Settings,
    workflow: dict[str, Any],
    service: str,
    inputs: Any,
    error: type[Exception],
    message: str,
) -> None:
    with Client(settings.with_overrides(max_input_bytes=2048)) as small:
        before = keys_of(small)
        dbsize = small.store.redis.dbsize()
        with pytest.raises(error, match=re.escape(message)):
            small.submit(workflow, service=service, inputs=inputs)
        assert keys_of(small) == before
        assert small.store.redis.dbsize() == dbsize


def test_unreadable_path_is_a_clear_error(client: Client, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"cannot read input 'x\.png'"):
        client.submit(load_graph("x.png"), inputs={"x.png": tmp_path / "missing.png"})
    assert keys_of(client) == []


def test_comfyui_job_without_inputs_may_name_instance_files(client: Client) -> None:
    job = client.submit(load_graph("example.png"))
    assert client.store.redis.exists(client.store.keys.inputs(job.id)) == 0


def test_a1111_base64_fields_are_left_alone(client: Client) -> None:
    import base64

    job = client.submit(img2img(base64.b64encode(PNG).decode()), service="a1111")
    assert job.status().state == "queued"


def test_the_submit_script_enforces_the_cap_itself(settings: Settings) -> None:
    """A client configured with a larger cap than the fleet's is refused by the script (the
    cap travels with the call), and the script writes nothing."""
    with Client(settings) as client:
        spec_client = Client(settings.with_overrides(max_input_bytes=1 << 20))
        try:
            from fleetq.validation import build_spec

            spec = build_spec(load_graph("x.png"), spec_client.settings,
                              inputs={"x.png": PNG + b"\0" * 4096})  # fmt: skip
            small = settings.with_overrides(max_input_bytes=1024)
            with Client(small) as refusing, pytest.raises(PayloadTooLarge, match="cap is 1024"):
                refusing.store.submit(spec)
            assert keys_of(client) == []
        finally:
            spec_client.close()


def test_sniffing() -> None:
    assert sniff_content_type(PNG) == "image/png"
    assert sniff_content_type(JPEG) == "image/jpeg"
    assert sniff_content_type(WEBP) == "image/webp"
    assert sniff_content_type(b"GIF89a....") == "image/gif"
    assert sniff_content_type(b"RIFF\0\0\0\0WAVE") is None
    assert sniff_content_type(b"") is None


def test_controlnet_units_are_references(client: Client) -> None:
    body = {
        "prompt": "x",
        "alwayson_scripts": {"ControlNet": {"args": [{"image": "pose.png", "module": "none"}]}},
    }
    job = client.submit(body, service="a1111", inputs={"pose.png": PNG})
    assert client.store.redis.hkeys(client.store.keys.inputs(job.id)) == [b"pose.png"]
    with pytest.raises(InvalidInput, match=r"alwayson_scripts.ControlNet.args\[0\].image"):
        client.submit(body, service="a1111")
