"""Input names and the places workflows name files: properties and the A1111 inlining."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetq.errors import InvalidInput
from fleetq.inputs import check_name, inputs_from_args, references
from supervisor.backends.a1111_inputs import inline

CONTROL = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}


@given(st.text(max_size=200))
def test_an_accepted_name_is_a_plain_file_name(raw: str) -> None:
    try:
        name = check_name(raw)
    except InvalidInput:
        return
    assert os.path.basename(name) == name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and ".." not in name
    assert not CONTROL & set(name) and "[" not in name and not name.startswith((".", " "))


@pytest.mark.parametrize("name", ["photo.png", "IMG_0042.JPG", "mask (1).png", "été.webp"])
def test_ordinary_names_pass(name: str) -> None:
    assert check_name(name) == name


def test_inline_puts_base64_where_a1111_names_a_file() -> None:
    body: dict[str, Any] = {
        "prompt": "x",
        "init_images": ["a.png", "data:image/png;base64,AAAA"],
        "mask": "m.png",
        "alwayson_scripts": {
            "controlnet": {
                "args": [
                    {"image": "pose.png", "module": "openpose"},
                    {"input_image": "depth.png"},
                    {"image": {"image": "c.png", "mask": "cm.png"}},
                ]
            }
        },
    }
    files = {n: n.encode() for n in ("a.png", "m.png", "pose.png", "depth.png", "c.png", "cm.png")}
    out = inline(body, files)

    def b64(name: str) -> str:
        return base64.b64encode(name.encode()).decode()

    assert out["init_images"] == [b64("a.png"), "data:image/png;base64,AAAA"]
    assert out["mask"] == b64("m.png")
    units = out["alwayson_scripts"]["controlnet"]["args"]
    assert units[0] == {"image": b64("pose.png"), "module": "openpose"}
    assert units[1] == {"input_image": b64("depth.png")}
    assert units[2] == {"image": {"image": b64("c.png"), "mask": b64("cm.png")}}
    assert body["init_images"][0] == "a.png"  # the job's own workflow is left as it was


def test_references_of_an_operator_service_are_searched_both_ways() -> None:
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}
    assert [s.where for s in references(graph, "sdxl")] == ["node 1 (LoadImage) input 'image'"]
    body = {"prompt": "x", "init_images": ["y.png"]}
    assert [s.where for s in references(body, "sd15")] == ["init_images[0]"]


def test_input_arguments() -> None:
    assert inputs_from_args(None) is None
    parsed = inputs_from_args(["a.png=/tmp/x/b.png", "/tmp/y/c.png"])
    assert parsed is not None and {k: str(v) for k, v in parsed.items()} == {
        "a.png": "/tmp/x/b.png",
        "c.png": "/tmp/y/c.png",
    }
    with pytest.raises(InvalidInput, match="twice"):
        inputs_from_args(["/a/c.png", "/b/c.png"])
    with pytest.raises(InvalidInput, match="NAME=PATH"):
        inputs_from_args(["=x.png"])
