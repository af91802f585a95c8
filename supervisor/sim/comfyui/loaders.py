"""``LoadImage`` and ``LoadImageMask``: the nodes that read a file of the input folder.

As in ComfyUI (``nodes.py``), the ``image`` combo lists the files at the top of ``input/``,
yet validation does not check the list: the classes' ``VALIDATE_INPUTS`` only asks whether
the (possibly ``subfolder/name`` or annotated ``name [output]``) file exists and answers
``Invalid image file: <name>`` otherwise, which ComfyUI reports as ``custom_validation_failed``.
The image that flows on has the size of the PNG and the colour of its first pixel.
``MaskToImage`` turns a loaded mask into an image an output node takes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from supervisor.sim.comfyui.schema import FakeImage, InputSpec, NodeCall, NodeClass, NodeResult
from supervisor.sim.png import png_first_pixel, png_size

_ANNOTATIONS = {" [input]": "input", " [output]": "output", " [temp]": "temp"}
LOADER_NAMES = ("LoadImage", "LoadImageMask")


async def _mask_to_image(call: NodeCall) -> NodeResult:
    return NodeResult((call.inputs["mask"],))


#: ``MaskToImage`` (comfy_extras.nodes_mask): how a loaded mask reaches an image output.
MASK_TO_IMAGE = NodeClass(
    name="MaskToImage",
    inputs=(InputSpec("mask", "MASK", bare=True),),
    return_types=("IMAGE",),
    run=_mask_to_image,
    python_module="comfy_extras.nodes_mask",
    category="mask",
    display_name="Convert Mask to Image",
)


def annotated_path(base: Path, name: str) -> Path:
    """``folder_paths.get_annotated_filepath``: ``name [output]`` reads the output folder,
    anything else the input folder."""
    folder = "input"
    for suffix, kind in _ANNOTATIONS.items():
        if name.endswith(suffix):
            name, folder = name[: -len(suffix)], kind
            break
    return base / folder / name


def _input_files(base: Path | None) -> tuple[str, ...]:
    if base is None:
        return ()
    folder = base / "input"
    try:
        return tuple(sorted(f for f in os.listdir(folder) if (folder / f).is_file()))
    except OSError:
        return ()


def _read_image(base: Path | None, name: str) -> FakeImage:
    if base is None:
        raise FileNotFoundError(name)
    data = annotated_path(base, name).read_bytes()
    try:
        width, height = png_size(data)
    except ValueError:
        width, height = 64, 64
    rgb = png_first_pixel(data) or (128, 128, 128)
    return FakeImage(width, height, 1, (rgb[0] << 16) | (rgb[1] << 8) | rgb[2])


def load_image_nodes(base: Path | None) -> dict[str, NodeClass]:
    """The two loaders reading ``base``/input (``base`` None: not started, nothing exists)."""

    def validate(inputs: Mapping[str, Any]) -> bool | str:
        image = str(inputs.get("image"))
        if base is None or not annotated_path(base, image).exists():
            return f"Invalid image file: {image}"
        return True

    async def load_image(call: NodeCall) -> NodeResult:
        image = _read_image(base, call.inputs["image"])
        return NodeResult((image, image))

    async def load_mask(call: NodeCall) -> NodeResult:
        return NodeResult((_read_image(base, call.inputs["image"]),))

    choices = _input_files(base)
    image_input = InputSpec("image", choices, {"image_upload": True})
    return {
        "LoadImage": NodeClass(
            name="LoadImage",
            inputs=(image_input,),
            return_types=("IMAGE", "MASK"),
            run=load_image,
            display_name="Load Image",
            category="image",
            validate=validate,
            validate_inputs=("image",),
        ),
        "LoadImageMask": NodeClass(
            name="LoadImageMask",
            inputs=(
                image_input,
                InputSpec("channel", ("alpha", "red", "green", "blue"), bare=True),
            ),
            return_types=("MASK",),
            run=load_mask,
            display_name="Load Image (as Mask)",
            category="mask",
            validate=validate,
            validate_inputs=("image",),
        ),
    }
