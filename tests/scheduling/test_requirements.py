"""Requirements derived from real workflows, explicit ones checked, the canonical form and the
class id, and ``meets`` in words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetq.errors import InvalidArgument
from fleetq.requirements import (
    COMFYUI_MODEL_INPUTS,
    Capabilities,
    Requirements,
    affinity_models,
    derive,
    meets,
    parse_explicit,
    requirements_for,
)

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
CAPTURES = Path(__file__).resolve().parent / "captures"


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


# -- derived: ComfyUI ----------------------------------------------------------------------------


def test_sdxl_example_needs_its_checkpoint_and_node_classes() -> None:
    graph = _load(ROOT / "examples" / "comfyui_sdxl_txt2img.json")
    req = derive("comfyui", graph)
    assert req.model_files == {"checkpoints": ("sd_xl_base_1.0.safetensors",)}
    assert req.nodes == {
        "CheckpointLoaderSimple",
        "EmptyLatentImage",
        "CLIPTextEncode",
        "KSampler",
        "VAEDecode",
        "SaveImage",
    }


def test_recorded_upscale_prompt_needs_its_upscale_model() -> None:
    """The upscale prompt recorded from a real ComfyUI, in its ``{"prompt": graph}`` body."""
    body = _load(TESTS / "backends" / "captures" / "post_prompt_upscale_progress.json")
    req = derive("comfyui", body["request"]["body"])
    assert req.model_files == {"upscale_models": ("tiny_random_compact_x1.safetensors",)}
    assert "ImageUpscaleWithModel" in req.nodes
    assert "UpscaleModelLoader" in req.nodes


def test_every_loader_input_is_a_file_list_in_the_recorded_object_info() -> None:
    """The table of model inputs matches ComfyUI 0.3.64: each one is a combo whose choices
    are files (empty on the recording server, which had no models; configs lists yaml files)."""
    recorded = _load(CAPTURES / "object_info_loaders.json")
    for (class_type, input_name), kind in COMFYUI_MODEL_INPUTS.items():
        spec = recorded[class_type]["input"]["required"][input_name]
        choices = spec[1]["options"] if spec[0] == "COMBO" else spec[0]
        assert isinstance(choices, list), (class_type, input_name)
        if kind == "configs":
            assert all(name.endswith(".yaml") for name in choices)
        elif kind != "vae":  # VAELoader always offers "pixel_space"
            assert choices == [], (class_type, input_name)


def test_links_and_custom_none_choices_name_no_file() -> None:
    graph = {
        "1": {"class_type": "LoraLoader", "inputs": {"lora_name": ["9", 0], "model": ["2", 0]}},
        "2": {
            "class_type": "Efficient Loader",
            "inputs": {"ckpt_name": "a.safetensors", "lora_name": "None"},
        },
        "3": {
            "class_type": "DualCLIPLoader",
            "inputs": {"clip_name1": "t5.safetensors", "clip_name2": "l.safetensors"},
        },
        "4": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux\\flux1-dev.safetensors"}},
        "5": {"class_type": "KSampler", "inputs": {"sampler_name": "euler", "model_name": "x"}},
    }
    req = derive("comfyui", graph)
    assert req.model_files == {
        "checkpoints": ("a.safetensors",),
        "diffusion_models": ("flux/flux1-dev.safetensors",),
        "text_encoders": ("l.safetensors", "t5.safetensors"),
    }


# -- derived: A1111 ------------------------------------------------------------------------------


def test_a1111_example_needs_its_checkpoint() -> None:
    body = _load(ROOT / "examples" / "a1111_txt2img.json")
    assert derive("a1111", body) == Requirements.make(models={"checkpoints": ["sd_xl_base_1.0"]})


def test_a1111_loras_in_prompts_and_scripts() -> None:
    body = {
        "prompt": "a cat <lora:detail_tweaker:0.6>, <lora:film grain:1> and <lora:bare>",
        "negative_prompt": "<lora:bad-hands:-1>",
        "script_name": "X/Y/Z plot",
        "alwayson_scripts": {"ControlNet": {"args": []}, "ADetailer": {"args": []}},
        "override_settings": {"sd_model_checkpoint": "juggernaut [abc123]"},
    }
    assert derive("a1111", body).model_files == {
        "checkpoints": ("juggernaut [abc123]",),
        "loras": ("bad-hands", "bare", "detail_tweaker", "film grain"),
        "scripts": ("adetailer", "controlnet", "x/y/z plot"),
    }


def test_other_services_derive_nothing() -> None:
    assert derive("echo", {"anything": 1}).empty


# -- explicit ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requires", "message"),
    [
        ([1], "requires must be an object"),
        ({"label": {}}, "unknown key"),
        ({"labels": ["gpu"]}, "labels must be an object"),
        ({"labels": {"": "x"}}, "label key"),
        ({"labels": {"gpu": 80}}, "string value"),
        ({"labels": {"gpu": "a\nb"}}, "printable"),
        ({"min_vram_gb": "24"}, "number of GB"),
        ({"min_vram_gb": True}, "number of GB"),
        ({"min_vram_gb": 0}, "more than 0"),
        ({"min_vram_gb": float("nan")}, "more than 0"),
    ],
)
def test_bad_explicit_requirements_are_refused(requires: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_explicit(requires)


def test_explicit_and_derived_combine() -> None:
    graph = _load(ROOT / "examples" / "comfyui_sdxl_txt2img.json")
    req = requirements_for("comfyui", graph, {"labels": {"gpu": "h100"}, "min_vram_gb": 24.0})
    assert req.label_map == {"gpu": "h100"}
    assert req.min_vram_gb == 24
    assert req.model_files["checkpoints"] == ("sd_xl_base_1.0.safetensors",)


# -- canonical form and class id -----------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
kinds = st.sampled_from(["checkpoints", "loras", "vae", "scripts", "controlnet"])
label_keys = st.from_regex(r"[a-z][a-z0-9_.-]{0,8}", fullmatch=True)
requirement_parts = st.fixed_dictionaries(
    {
        "nodes": st.lists(names, max_size=5),
        "models": st.dictionaries(kinds, st.lists(names, max_size=4), max_size=3),
        "labels": st.dictionaries(
            label_keys, st.text(max_size=6).filter(str.isprintable), max_size=3
        ),
        "min_vram_gb": st.none() | st.integers(1, 200),
    }
)


@given(requirement_parts, st.randoms(use_true_random=False))
def test_class_id_ignores_order_and_duplicates(parts: dict[str, Any], rnd: Any) -> None:
    """Equal requirements built from shuffled, repeated inputs share one class."""
    first = Requirements.make(**parts)
    shuffled_models = {}
    for kind in rnd.sample(list(parts["models"]), len(parts["models"])):
        files = parts["models"][kind] * 2
        shuffled_models[kind] = rnd.sample(files, len(files))
    labels = list(parts["labels"].items())
    rnd.shuffle(labels)
    vram = parts["min_vram_gb"]
    second = Requirements.make(
        nodes=rnd.sample(parts["nodes"], len(parts["nodes"])) + parts["nodes"],
        models=shuffled_models,
        labels=dict(labels),
        min_vram_gb=None if vram is None else float(vram),
    )
    assert first == second
    assert first.canonical == second.canonical
    assert first.class_id == second.class_id


@given(requirement_parts)
def test_canonical_form_round_trips(parts: dict[str, Any]) -> None:
    req = Requirements.make(**parts)
    back = Requirements.from_canonical(req.canonical)
    assert back == req
    assert back.class_id == req.class_id
    assert json.loads(req.canonical) == req.to_dict()


@given(requirement_parts, requirement_parts)
def test_different_requirements_have_different_class_ids(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    first, second = Requirements.make(**a), Requirements.make(**b)
    assert (first == second) == (first.class_id == second.class_id)


def test_class_ids_are_stable_across_releases() -> None:
    """Queues are keyed by class id: the same requirements must name the same class in every
    version, so the canonical text and its hash are pinned here."""
    req = Requirements.make(
        nodes=["KSampler", "CheckpointLoaderSimple"],
        models={"checkpoints": ["flux1-dev.safetensors"]},
        labels={"gpu": "h100"},
        min_vram_gb=24,
    )
    assert req.canonical == (
        '{"labels":{"gpu":"h100"},"min_vram_gb":24,'
        '"models":{"checkpoints":["flux1-dev.safetensors"]},'
        '"nodes":["CheckpointLoaderSimple","KSampler"]}'
    )
    assert req.class_id == "d842db3b23c2c43c"
    assert Requirements().canonical == "{}"


# -- meets ---------------------------------------------------------------------------------------

SDXL_BOX = Capabilities.make(
    nodes=["CheckpointLoaderSimple", "CLIPTextEncode", "KSampler", "VAEDecode", "SaveImage",
           "EmptyLatentImage"],
    models={"checkpoints": ["sd_xl_base_1.0.safetensors"]},
    labels={"gpu": "a10"},
    vram_gb=24,
)  # fmt: skip


def test_a_machine_with_everything_meets_the_job() -> None:
    graph = _load(ROOT / "examples" / "comfyui_sdxl_txt2img.json")
    assert meets(derive("comfyui", graph), SDXL_BOX) is None


def test_unmet_requirements_are_said_in_words() -> None:
    req = Requirements.make(
        nodes=["KSampler", "IPAdapterAdvanced"],
        models={"checkpoints": ["flux1-dev.safetensors"], "loras": ["a", "b"]},
        labels={"gpu": "h100", "region": "eu"},
        min_vram_gb=80,
    )
    assert meets(req, SDXL_BOX) == (
        "needs node class IPAdapterAdvanced; needs checkpoint flux1-dev.safetensors; "
        "needs LoRAs a, b; needs label gpu=h100 (has gpu=a10); needs label region=eu; "
        "needs 80 GB of GPU memory (has 24)"
    )


def test_memory_unknown_does_not_meet_a_memory_requirement() -> None:
    req = Requirements.make(min_vram_gb=8)
    assert meets(req, Capabilities.make()) == "needs 8 GB of GPU memory (unknown here)"
    assert meets(req, Capabilities.make(vram_gb=8)) is None


def test_node_classes_are_unmet_on_a_backend_without_them() -> None:
    req = Requirements.make(nodes=["KSampler"])
    assert (
        meets(req, Capabilities.make(models={"checkpoints": ["x"]})) == "needs node class KSampler"
    )
    two = Requirements.make(nodes=["KSampler", "SaveImage"])
    assert meets(two, Capabilities.make()) == "needs node classes KSampler, SaveImage"
    patches = Requirements.make(models={"model_patches": ["a", "b"], "custom_models": ["c"]})
    assert meets(patches, Capabilities.make()) == "needs custom_models c; needs model patches a, b"


def test_capabilities_survive_publishing() -> None:
    caps = SDXL_BOX.with_machine(labels={"region": "eu"}, vram_gb=80)
    back = Capabilities.from_dict(json.loads(json.dumps(caps.to_dict())))
    assert back == caps
    assert back.labels == {"gpu": "a10", "region": "eu"}


def test_affinity_models_are_the_expensive_loads() -> None:
    graph = _load(ROOT / "examples" / "comfyui_sdxl_txt2img.json")
    assert affinity_models(derive("comfyui", graph)) == {"sd_xl_base_1.0.safetensors"}
    flux = Requirements.make(
        models={"diffusion_models": ["flux1-dev.safetensors"], "loras": ["x"], "vae": ["ae"]}
    )
    assert affinity_models(flux) == {"flux1-dev.safetensors"}
    assert affinity_models(Requirements()) == frozenset()


def test_the_module_needs_no_supervisor_or_http_library() -> None:
    """The client imports it at submit with only redis installed."""
    code = (
        "import sys, fleetq.requirements; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'aiohttp', 'supervisor', 'textual', 'pynvml', 'psutil'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
