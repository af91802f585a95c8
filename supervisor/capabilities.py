"""What a backend instance can run, read from the backend itself.

- ComfyUI: ``GET /object_info`` gives the node classes, and the loader inputs' choices give
  the model files on disk, per ``models/`` folder (the same (class, input) table that derives
  a job's requirements, so both sides name files alike).
- A1111: ``/sdapi/v1/sd-models`` (checkpoints, under every alias A1111 accepts),
  ``/sdapi/v1/loras`` (names and aliases usable as ``<lora:name:w>``), ``/sdapi/v1/scripts``
  (lower-cased titles) and ``/sdapi/v1/samplers`` (names and aliases; published for operators,
  never a requirement).

The machine adds its operator labels and GPU memory with ``Capabilities.with_machine``.
Reading goes through the adapters' shared HTTP layer, so an unreachable backend raises
:class:`~supervisor.backends.http.Unreachable` as everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fleetq.errors import InvalidArgument
from fleetq.requirements import Capabilities, comfyui_model_kind, parse_explicit
from supervisor.backends.http import Answer, HttpClient

#: ``/object_info`` is the heaviest ComfyUI GET (about 0.5 MB, 100 ms on a real server).
OBJECT_INFO_TIMEOUT_S = 30.0
LIST_TIMEOUT_S = 10.0


class CapabilitiesUnreadable(Exception):
    """The backend answered, but not with something its capabilities can be read from."""


# -- ComfyUI -----------------------------------------------------------------------------------


def _combo_choices(spec: Any) -> list[str] | None:
    """The choices of a combo input: ``[[choices], {...}]`` (classic nodes) or
    ``["COMBO", {"options": [choices]}]`` (V3 nodes); None for any other input."""
    if not isinstance(spec, list) or not spec:
        return None
    kind = spec[0]
    if isinstance(kind, list):
        choices: Any = kind
    elif kind == "COMBO" and len(spec) > 1 and isinstance(spec[1], Mapping):
        choices = spec[1].get("options")
    else:
        return None
    if not isinstance(choices, list):
        return None
    return [choice for choice in choices if isinstance(choice, str)]


def comfyui_capabilities_from_object_info(object_info: Mapping[str, Any]) -> Capabilities:
    """Node classes and model files of a ComfyUI ``/object_info`` body."""
    models: dict[str, set[str]] = {}
    for class_type, info in object_info.items():
        inputs = info.get("input") if isinstance(info, Mapping) else None
        if not isinstance(inputs, Mapping):
            continue
        for category in ("required", "optional"):
            declared = inputs.get(category)
            if not isinstance(declared, Mapping):
                continue
            for input_name, spec in declared.items():
                kind = comfyui_model_kind(class_type, input_name)
                choices = _combo_choices(spec) if kind is not None else None
                if kind is not None and choices is not None:
                    models.setdefault(kind, set()).update(choices)
    return Capabilities.make(nodes=object_info.keys(), models=models)


async def read_comfyui_capabilities(
    http: HttpClient[Any], timeout_s: float = OBJECT_INFO_TIMEOUT_S
) -> Capabilities:
    """Read a ComfyUI instance's capabilities from ``GET /object_info``."""
    body = _json_of(await http.call("GET", "/object_info", timeout_s), "/object_info")
    if not isinstance(body, Mapping):
        raise CapabilitiesUnreadable("/object_info did not answer a JSON object")
    return comfyui_capabilities_from_object_info(body)


# -- A1111 -------------------------------------------------------------------------------------


def _checkpoint_aliases(model: Mapping[str, Any]) -> set[str]:
    """Every name ``override_settings.sd_model_checkpoint`` may use for one checkpoint
    (``sd_models.CheckpointInfo.ids``: title, file name, name without extension, model name,
    short hash, sha256)."""
    aliases: set[str] = set()
    for key in ("title", "model_name", "hash", "sha256"):
        value = model.get(key)
        if isinstance(value, str) and value:
            aliases.add(value)
    filename = model.get("filename")
    if isinstance(filename, str) and filename:
        file = filename.replace("\\", "/").rsplit("/", 1)[-1]
        aliases.update({file, file.rsplit(".", 1)[0]})
    return aliases


def a1111_capabilities_from(
    sd_models: Iterable[Mapping[str, Any]],
    loras: Iterable[Mapping[str, Any]] = (),
    scripts: Mapping[str, Any] | None = None,
    samplers: Iterable[Mapping[str, Any]] = (),
) -> Capabilities:
    """Capabilities from the bodies of A1111's list endpoints."""
    checkpoints: set[str] = set()
    for model in sd_models:
        checkpoints |= _checkpoint_aliases(model)
    lora_names = {
        value
        for lora in loras
        for value in (lora.get("name"), lora.get("alias"))
        if isinstance(value, str) and value
    }
    script_names = {
        name.lower()
        for mode in ("txt2img", "img2img")
        for name in (scripts or {}).get(mode) or ()
        if isinstance(name, str) and name
    }
    sampler_names: set[str] = set()
    for sampler in samplers:
        name, aliases = sampler.get("name"), sampler.get("aliases")
        if isinstance(name, str):
            sampler_names.add(name)
        if isinstance(aliases, list):
            sampler_names.update(alias for alias in aliases if isinstance(alias, str))
    models = {
        "checkpoints": checkpoints,
        "loras": lora_names,
        "scripts": script_names,
        "samplers": sampler_names,
    }
    return Capabilities.make(models=models)


async def read_a1111_capabilities(
    http: HttpClient[Any], timeout_s: float = LIST_TIMEOUT_S
) -> Capabilities:
    """Read an A1111 (or Forge) instance's capabilities from its list endpoints.

    ``/sdapi/v1/loras`` belongs to the built-in Lora extension and may be missing (404):
    then no LoRA is offered.
    """
    sd_models = await _get_list(http, "/sdapi/v1/sd-models", timeout_s)
    samplers = await _get_list(http, "/sdapi/v1/samplers", timeout_s)
    loras = await _get_list(http, "/sdapi/v1/loras", timeout_s, missing_ok=True)
    scripts = _json_of(await http.call("GET", "/sdapi/v1/scripts", timeout_s), "/sdapi/v1/scripts")
    if not isinstance(scripts, Mapping):
        raise CapabilitiesUnreadable("/sdapi/v1/scripts did not answer a JSON object")
    return a1111_capabilities_from(
        _objects(sd_models), _objects(loras), scripts, _objects(samplers)
    )


async def read_a1111_loaded(
    http: HttpClient[Any], timeout_s: float = LIST_TIMEOUT_S
) -> frozenset[str]:
    """Every name of the checkpoint an A1111 server has loaded: ``sd_model_checkpoint`` of
    ``/sdapi/v1/options`` (a title) with the aliases ``/sdapi/v1/sd-models`` gives it, so a
    job naming it any way A1111 accepts matches. Empty when none is loaded."""
    options = _json_of(await http.call("GET", "/sdapi/v1/options", timeout_s), "/sdapi/v1/options")
    current = options.get("sd_model_checkpoint") if isinstance(options, Mapping) else None
    if not isinstance(current, str) or not current:
        return frozenset()
    for model in _objects(await _get_list(http, "/sdapi/v1/sd-models", timeout_s)):
        aliases = _checkpoint_aliases(model)
        if current in aliases:
            return frozenset(aliases)
    return frozenset({current})


async def read_capabilities(kind: str, http: HttpClient[Any]) -> Capabilities:
    """Read the capabilities of a backend of ``kind`` (``comfyui`` or ``a1111``)."""
    if kind == "comfyui":
        return await read_comfyui_capabilities(http)
    if kind == "a1111":
        return await read_a1111_capabilities(http)
    raise ValueError(f"no capability reader for backend kind {kind!r}")


# -- helpers -----------------------------------------------------------------------------------


def vram_gb(memory_total_mb: int | None) -> float | None:
    """A GPU's total memory in GB (10^9 bytes) from NVML's MiB, to 0.1: a card sold as
    24 GB (24564 MiB) meets ``min_vram_gb: 24``."""
    if memory_total_mb is None:
        return None
    return round(memory_total_mb * 1_048_576 / 1e9, 1)


def parse_label(text: str) -> tuple[str, str]:
    """One operator label ``key=value`` (as given with ``--label``), checked like the labels
    a job may require; raises ``fleetq.errors.InvalidArgument``."""
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidArgument(f"label {text!r:.70} must look like key=value")
    return next(iter(parse_explicit({"labels": {key.strip(): value.strip()}}).labels))


def _json_of(answer: Answer, path: str) -> Any:
    if answer.status != 200:
        raise CapabilitiesUnreadable(f"GET {path}: HTTP {answer.status}")
    body = answer.parsed()
    if body is None:
        raise CapabilitiesUnreadable(f"GET {path}: the answer is not JSON")
    return body


async def _get_list(
    http: HttpClient[Any], path: str, timeout_s: float, *, missing_ok: bool = False
) -> list[Any]:
    answer = await http.call("GET", path, timeout_s)
    if missing_ok and answer.status == 404:
        return []
    body = _json_of(answer, path)
    if not isinstance(body, list):
        raise CapabilitiesUnreadable(f"GET {path} did not answer a JSON list")
    return body


def _objects(items: list[Any]) -> list[Mapping[str, Any]]:
    return [item for item in items if isinstance(item, Mapping)]
