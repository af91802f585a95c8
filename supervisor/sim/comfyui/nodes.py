"""The node classes the fake ComfyUI knows: a few core nodes plus ``FakeWork``.

Model-free: EmptyImage, EmptyLatentImage, ImageScale, ImageBlur, SaveImage, PreviewImage,
and the image loaders LoadImage and LoadImageMask (:mod:`.loaders`).
The default text-to-image chain also runs once ``checkpoints`` lists a model:
CheckpointLoaderSimple -> CLIPTextEncode -> KSampler (a progress frame per step, each
``sampler_step_s`` long) -> VAEDecode; with no model the loader fails validation with
``value_not_in_list``, as on a real server without models.

Schemas follow ComfyUI 0.3.64 (exactly where ``/object_info`` was captured) so validation
errors carry the same ``input_config``; behaviour is reduced to sizes and colours.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from supervisor.sim.comfyui.fakework import FAKE_WORK
from supervisor.sim.comfyui.loaders import MASK_TO_IMAGE, load_image_nodes
from supervisor.sim.comfyui.schema import (
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


async def _empty_latent(call: NodeCall) -> NodeResult:
    inputs = call.inputs
    return NodeResult((FakeImage(inputs["width"], inputs["height"], inputs["batch_size"]),))


async def _image_scale(call: NodeCall) -> NodeResult:
    image: FakeImage = call.inputs["image"]
    width, height = call.inputs["width"], call.inputs["height"]
    if width == 0 and height == 0:
        return NodeResult((image,))
    # A zero side keeps the aspect ratio (``comfy.utils.common_upscale`` callers do this).
    if width == 0:
        width = max(1, round(image.width * height / image.height))
    if height == 0:
        height = max(1, round(image.height * width / image.width))
    return NodeResult((FakeImage(width, height, image.batch_size, image.color),))


async def _encode_text(call: NodeCall) -> NodeResult:
    return NodeResult((FakeModel("CONDITIONING", str(call.inputs["text"])),))


async def _ksampler(call: NodeCall) -> NodeResult:
    """Steps at ``sampler_step_s`` each, with a progress frame per step (like a real sampler,
    and interruptible at each one) and, when previews are on, a preview of the latent whose
    colour moves towards the final one step by step."""
    latent: FakeImage = call.inputs["latent_image"]
    steps = int(call.inputs["steps"])
    color = zlib.crc32(f"{call.inputs['seed']}".encode()) & 0xFFFFFF
    for step in range(1, steps + 1):
        await asyncio.sleep(call.runtime.sampler_step_s)
        preview = None
        if call.runtime.previews:
            shade = (color * step // steps) & 0xFFFFFF
            preview = FakeImage(latent.width, latent.height, 1, shade)
        await call.runtime.progress(step, steps, preview)
    return NodeResult((FakeImage(latent.width, latent.height, latent.batch_size, color),))


async def _vae_decode(call: NodeCall) -> NodeResult:
    return NodeResult((call.inputs["samples"],))


async def _load_checkpoint(call: NodeCall) -> NodeResult:
    name = call.inputs["ckpt_name"]
    await call.runtime.load_model(name)
    return NodeResult(tuple(FakeModel(kind, name) for kind in ("MODEL", "CLIP", "VAE")))


async def _load_unet(call: NodeCall) -> NodeResult:
    name = call.inputs["unet_name"]
    await call.runtime.load_model(name)
    return NodeResult((FakeModel("MODEL", name),))


async def _load_lora(call: NodeCall) -> NodeResult:
    return NodeResult((call.inputs["model"], call.inputs["clip"]))


async def _load_vae(call: NodeCall) -> NodeResult:
    return NodeResult((FakeModel("VAE", call.inputs["vae_name"]),))


async def _pass_image(call: NodeCall) -> NodeResult:
    image = call.inputs.get("image")
    return NodeResult((image if image is not None else FakeImage(64, 64, 1, 0x808080),))


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


EMPTY_LATENT_IMAGE = NodeClass(
    name="EmptyLatentImage",
    inputs=(
        InputSpec(
            "width",
            "INT",
            {
                "default": 512,
                "min": 16,
                "max": 16384,
                "step": 8,
                "tooltip": "The width of the latent images in pixels.",
            },
        ),
        InputSpec(
            "height",
            "INT",
            {
                "default": 512,
                "min": 16,
                "max": 16384,
                "step": 8,
                "tooltip": "The height of the latent images in pixels.",
            },
        ),
        InputSpec(
            "batch_size",
            "INT",
            {
                "default": 1,
                "min": 1,
                "max": 4096,
                "tooltip": "The number of latent images in the batch.",
            },
        ),
    ),
    return_types=("LATENT",),
    run=_empty_latent,
    display_name="Empty Latent Image",
    description="Create a new batch of empty latent images to be denoised via sampling.",
    category="latent",
    output_tooltips=("The empty latent image batch.",),
)

IMAGE_SCALE = NodeClass(
    name="ImageScale",
    inputs=(
        InputSpec("image", "IMAGE", bare=True),
        InputSpec(
            "upscale_method", ("nearest-exact", "bilinear", "area", "bicubic", "lanczos"), bare=True
        ),
        InputSpec("width", "INT", {"default": 512, "min": 0, "max": 16384, "step": 1}),
        InputSpec("height", "INT", {"default": 512, "min": 0, "max": 16384, "step": 1}),
        InputSpec("crop", ("disabled", "center"), bare=True),
    ),
    return_types=("IMAGE",),
    run=_image_scale,
    display_name="Upscale Image",
    category="image/upscaling",
)


KSAMPLER_SAMPLERS = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm",
    "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
    "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
    "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver",
    "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
)  # fmt: skip
KSAMPLER_SCHEDULERS = (
    "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
    "linear_quadratic", "kl_optimal",
)  # fmt: skip

CLIP_TEXT_ENCODE = NodeClass(
    name="CLIPTextEncode",
    inputs=(
        InputSpec(
            "text",
            "STRING",
            {"multiline": True, "dynamicPrompts": True, "tooltip": "The text to be encoded."},
        ),
        InputSpec("clip", "CLIP", {"tooltip": "The CLIP model used for encoding the text."}),
    ),
    return_types=("CONDITIONING",),
    run=_encode_text,
    display_name="CLIP Text Encode (Prompt)",
    description="Encodes a text prompt using a CLIP model into an embedding that can be used "
    "to guide the diffusion model towards generating specific images.",
    category="conditioning",
    output_tooltips=(
        "A conditioning containing the embedded text used to guide the diffusion model.",
    ),
)

KSAMPLER = NodeClass(
    name="KSampler",
    inputs=(
        InputSpec("model", "MODEL", {"tooltip": "The model used for denoising the input latent."}),
        InputSpec(
            "seed",
            "INT",
            {
                "default": 0,
                "min": 0,
                "max": 0xFFFFFFFFFFFFFFFF,
                "control_after_generate": True,
                "tooltip": "The random seed used for creating the noise.",
            },
        ),
        InputSpec(
            "steps",
            "INT",
            {
                "default": 20,
                "min": 1,
                "max": 10000,
                "tooltip": "The number of steps used in the denoising process.",
            },
        ),
        InputSpec(
            "cfg",
            "FLOAT",
            {
                "default": 8.0,
                "min": 0.0,
                "max": 100.0,
                "step": 0.1,
                "round": 0.01,
                "tooltip": "The Classifier-Free Guidance scale balances creativity and adherence "
                "to the prompt. Higher values result in images more closely matching the prompt "
                "however too high values will negatively impact quality.",
            },
        ),
        InputSpec(
            "sampler_name",
            KSAMPLER_SAMPLERS,
            {
                "tooltip": "The algorithm used when sampling, this can affect the quality, "
                "speed, and style of the generated output."
            },
        ),
        InputSpec(
            "scheduler",
            KSAMPLER_SCHEDULERS,
            {"tooltip": "The scheduler controls how noise is gradually removed to form the image."},
        ),
        InputSpec(
            "positive",
            "CONDITIONING",
            {
                "tooltip": "The conditioning describing the attributes you want to include in "
                "the image."
            },
        ),
        InputSpec(
            "negative",
            "CONDITIONING",
            {
                "tooltip": "The conditioning describing the attributes you want to exclude from "
                "the image."
            },
        ),
        InputSpec("latent_image", "LATENT", {"tooltip": "The latent image to denoise."}),
        InputSpec(
            "denoise",
            "FLOAT",
            {
                "default": 1.0,
                "min": 0.0,
                "max": 1.0,
                "step": 0.01,
                "tooltip": "The amount of denoising applied, lower values will maintain the "
                "structure of the initial image allowing for image to image sampling.",
            },
        ),
    ),
    return_types=("LATENT",),
    run=_ksampler,
    description="Uses the provided model, positive and negative conditioning to denoise the "
    "latent image.",
    category="sampling",
    output_tooltips=("The denoised latent.",),
)

VAE_DECODE = NodeClass(
    name="VAEDecode",
    inputs=(
        InputSpec("samples", "LATENT", {"tooltip": "The latent to be decoded."}),
        InputSpec("vae", "VAE", {"tooltip": "The VAE model used for decoding the latent."}),
    ),
    return_types=("IMAGE",),
    run=_vae_decode,
    display_name="VAE Decode",
    description="Decodes latent images back into pixel space images.",
    category="latent",
    output_tooltips=("The decoded image.",),
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


def lora_loader(loras: tuple[str, ...]) -> NodeClass:
    """``LoraLoader`` offering the files of ``models/loras``."""
    return NodeClass(
        name="LoraLoader",
        inputs=(
            InputSpec(
                "model", "MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}
            ),
            InputSpec("clip", "CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}),
            InputSpec("lora_name", loras, {"tooltip": "The name of the LoRA."}),
            InputSpec(
                "strength_model",
                "FLOAT",
                {
                    "default": 1.0,
                    "min": -100.0,
                    "max": 100.0,
                    "step": 0.01,
                    "tooltip": "How strongly to modify the diffusion model. This value can be "
                    "negative.",
                },
            ),
            InputSpec(
                "strength_clip",
                "FLOAT",
                {
                    "default": 1.0,
                    "min": -100.0,
                    "max": 100.0,
                    "step": 0.01,
                    "tooltip": "How strongly to modify the CLIP model. This value can be negative.",
                },
            ),
        ),
        return_types=("MODEL", "CLIP"),
        run=_load_lora,
        display_name="Load LoRA",
        description="LoRAs are used to modify diffusion and CLIP models, altering the way in "
        "which latents are denoised such as applying styles. Multiple LoRA nodes can be linked "
        "together.",
        category="loaders",
        output_tooltips=("The modified diffusion model.", "The modified CLIP model."),
    )


def vae_loader(vaes: tuple[str, ...]) -> NodeClass:
    """``VAELoader``: the files of ``models/vae``, then ``pixel_space`` (always offered)."""
    return NodeClass(
        name="VAELoader",
        inputs=(InputSpec("vae_name", (*vaes, "pixel_space"), bare=True),),
        return_types=("VAE",),
        run=_load_vae,
        display_name="Load VAE",
        category="loaders",
    )


def unet_loader(unets: tuple[str, ...]) -> NodeClass:
    """``UNETLoader`` ("Load Diffusion Model") offering the files of ``models/diffusion_models``."""
    return NodeClass(
        name="UNETLoader",
        inputs=(
            InputSpec("unet_name", unets, bare=True),
            InputSpec(
                "weight_dtype", ("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"), bare=True
            ),
        ),
        return_types=("MODEL",),
        run=_load_unet,
        display_name="Load Diffusion Model",
        category="advanced/loaders",
    )


def custom_node(name: str) -> NodeClass:
    """A stand-in for a custom node: an optional ``image`` passed through as IMAGE."""
    return NodeClass(
        name=name,
        inputs=(InputSpec("image", "IMAGE", category="optional"),),
        return_types=("IMAGE",),
        run=_pass_image,
        python_module=f"custom_nodes.{name}",
        category="fake/custom",
    )


def node_classes(
    checkpoints: tuple[str, ...] = (),
    *,
    models: Mapping[str, tuple[str, ...]] | None = None,
    nodes: tuple[str, ...] | None = None,
    custom_nodes: tuple[str, ...] = (),
    base: Path | None = None,
) -> dict[str, NodeClass]:
    """The classes of one instance, by ``class_type``: every class the fake knows (or only
    ``nodes``) plus ``custom_nodes``; loaders offer ``checkpoints`` and the files of
    ``models`` (folder -> files); the image loaders read ``base``/input. Raises
    ``ValueError`` for an unknown name in ``nodes`` or a custom node named like a known
    class."""
    files = dict(models or {})
    classes = (
        EMPTY_IMAGE,
        EMPTY_LATENT_IMAGE,
        IMAGE_SCALE,
        SAVE_IMAGE,
        PREVIEW_IMAGE,
        IMAGE_BLUR,
        checkpoint_loader(files.get("checkpoints", checkpoints)),
        lora_loader(files.get("loras", ())),
        vae_loader(files.get("vae", ())),
        unet_loader(files.get("diffusion_models", ())),
        CLIP_TEXT_ENCODE,
        KSAMPLER,
        VAE_DECODE,
        FAKE_WORK,
        *load_image_nodes(base).values(),
        MASK_TO_IMAGE,
    )
    known = {node.name: node for node in classes}
    if nodes is not None:
        unknown = sorted(set(nodes) - set(known))
        if unknown:
            raise ValueError(f"unknown node class(es) {', '.join(unknown)}; known: {sorted(known)}")
        known = {name: node for name, node in known.items() if name in nodes}
    clashes = sorted(set(custom_nodes) & {node.name for node in classes})
    if clashes:
        raise ValueError(f"custom node(s) {', '.join(clashes)} would replace a built-in class")
    known.update({name: custom_node(name) for name in custom_nodes})
    return known


def object_info(classes: Mapping[str, NodeClass]) -> dict[str, Any]:
    """The full ``GET /object_info`` body."""
    return {name: node.info() for name, node in classes.items()}
