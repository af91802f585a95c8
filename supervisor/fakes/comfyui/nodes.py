"""The node classes the fake ComfyUI knows: a few model-free core nodes plus ``FakeWork``.

Schemas are copied from ComfyUI 0.3.64 (``/object_info`` captures) so validation errors carry
the same ``input_config``; behaviour is reduced to sizes and colours.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Mapping
from typing import Any

from supervisor.fakes.comfyui.fakework import FAKE_WORK
from supervisor.fakes.comfyui.schema import (
    FakeImage,
    FakeModel,
    InputSpec,
    NodeCall,
    NodeClass,
    NodeResult,
)

_SAVE_DESCRIPTION = "Saves the input images to your ComfyUI output directory."
_PREFIX_TOOLTIP = (
    "The prefix for the file to save. This may include formatting information such as "
    "%date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes."
)
_HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}


def _png_text(call: NodeCall) -> dict[str, str]:
    """SaveImage embeds the prompt and every ``extra_pnginfo`` key as PNG text chunks."""
    text = {"prompt": json.dumps(call.prompt)}
    extra = call.extra_data.get("extra_pnginfo")
    if isinstance(extra, Mapping):
        text.update({str(key): json.dumps(value) for key, value in extra.items()})
    return text


async def _empty_image(call: NodeCall) -> NodeResult:
    inputs = call.inputs
    image = FakeImage(inputs["width"], inputs["height"], inputs["batch_size"], inputs["color"])
    return NodeResult((image,))


async def _save_image(call: NodeCall) -> NodeResult:
    images = call.runtime.files.save_images(
        call.inputs["images"], call.inputs["filename_prefix"], "output", _png_text(call)
    )
    return NodeResult((), {"images": images})


async def _preview_image(call: NodeCall) -> NodeResult:
    suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    images = call.runtime.files.save_images(
        call.inputs["images"], f"ComfyUI_temp_{suffix}", "temp", _png_text(call)
    )
    return NodeResult((), {"images": images})


async def _image_blur(call: NodeCall) -> NodeResult:
    return NodeResult((call.inputs["image"],))


async def _load_checkpoint(call: NodeCall) -> NodeResult:
    name = call.inputs["ckpt_name"]
    return NodeResult(tuple(FakeModel(kind, name) for kind in ("MODEL", "CLIP", "VAE")))


EMPTY_IMAGE = NodeClass(
    name="EmptyImage",
    inputs=(
        InputSpec("width", "INT", {"default": 512, "min": 1, "max": 16384, "step": 1}),
        InputSpec("height", "INT", {"default": 512, "min": 1, "max": 16384, "step": 1}),
        InputSpec("batch_size", "INT", {"default": 1, "min": 1, "max": 4096}),
        InputSpec(
            "color",
            "INT",
            {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1, "display": "color"},
        ),
    ),
    return_types=("IMAGE",),
    run=_empty_image,
    category="image",
)

SAVE_IMAGE = NodeClass(
    name="SaveImage",
    inputs=(
        InputSpec("images", "IMAGE", {"tooltip": "The images to save."}),
        InputSpec("filename_prefix", "STRING", {"default": "ComfyUI", "tooltip": _PREFIX_TOOLTIP}),
    ),
    return_types=(),
    run=_save_image,
    output_node=True,
    display_name="Save Image",
    description=_SAVE_DESCRIPTION,
    category="image",
    hidden=_HIDDEN,
)

PREVIEW_IMAGE = NodeClass(
    name="PreviewImage",
    inputs=(InputSpec("images", "IMAGE", bare=True),),
    return_types=(),
    run=_preview_image,
    output_node=True,
    display_name="Preview Image",
    description=_SAVE_DESCRIPTION,
    category="image",
    hidden=_HIDDEN,
)

IMAGE_BLUR = NodeClass(
    name="ImageBlur",
    inputs=(
        InputSpec("image", "IMAGE"),
        InputSpec("blur_radius", "INT", {"default": 1, "min": 1, "max": 31, "step": 1}),
        InputSpec("sigma", "FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.1}),
    ),
    return_types=("IMAGE",),
    run=_image_blur,
    python_module="comfy_extras.nodes_post_processing",
    category="image/postprocessing",
    v3=True,
)


def checkpoint_loader(checkpoints: tuple[str, ...]) -> NodeClass:
    """``CheckpointLoaderSimple`` offering ``checkpoints`` (empty on a server without models)."""
    return NodeClass(
        name="CheckpointLoaderSimple",
        inputs=(
            InputSpec(
                "ckpt_name",
                checkpoints,
                {"tooltip": "The name of the checkpoint (model) to load."},
            ),
        ),
        return_types=("MODEL", "CLIP", "VAE"),
        run=_load_checkpoint,
        display_name="Load Checkpoint",
        description=(
            "Loads a diffusion model checkpoint, diffusion models are used to denoise latents."
        ),
        category="loaders",
        output_tooltips=(
            "The model used for denoising latents.",
            "The CLIP model used for encoding text prompts.",
            "The VAE model used for encoding and decoding images to and from latent space.",
        ),
    )


def node_classes(checkpoints: tuple[str, ...] = ()) -> dict[str, NodeClass]:
    """Every class the fake knows, by ``class_type``."""
    classes = (
        EMPTY_IMAGE,
        SAVE_IMAGE,
        PREVIEW_IMAGE,
        IMAGE_BLUR,
        checkpoint_loader(checkpoints),
        FAKE_WORK,
    )
    return {node.name: node for node in classes}


def object_info(classes: Mapping[str, NodeClass]) -> dict[str, Any]:
    """The full ``GET /object_info`` body."""
    return {name: node.info() for name, node in classes.items()}
