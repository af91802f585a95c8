"""Input files that travel with a job: checked at the edge, found in the workflow, stored with it.

A job may carry named files (images, masks) that its workflow reads: ComfyUI's ``LoadImage`` /
``LoadImageMask`` name them in their ``image`` input; an A1111 body names them in
``init_images``, ``mask`` or a ControlNet unit's ``image`` / ``input_image`` / ``mask``.
Since a job may land on any machine, the bytes are stored in Redis with the job and the
supervisor that claims it delivers them to its backend (ComfyUI ``/upload/image`` into a
per-job subfolder, A1111 inline base64).

Everything is checked before anything is written: names are plain file names, types are
sniffed from the bytes (never trusted from a name or a header), the files together stay
under ``Settings.max_input_bytes``, every reference names an attachment and every attachment
is referenced.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, MutableMapping, MutableSequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetq.config import Settings
from fleetq.errors import InvalidInput, PayloadTooLarge
from fleetq.model import InputFile

#: What ``submit(inputs=...)`` takes: file name -> bytes, or a path to read them from.
Inputs = Mapping[str, bytes | os.PathLike[str]]
#: ComfyUI node classes whose ``image`` input names a file of the instance's input folder.
COMFYUI_LOADERS = ("LoadImage", "LoadImageMask")
#: Most files one job may carry.
MAX_INPUT_FILES = 32
MAX_NAME_CHARS = 128

#: A plain file name: starts with a letter, digit or underscore; then letters, digits, space
#: and ``_ . - ( ) + , @ =``. No path separators, no brackets (ComfyUI reads ``x.png [output]``
#: as a file of another folder), no control characters.
_NAME = re.compile(r"[^\W][\w .()+,@=-]*")
#: What an A1111 image field holds when it names an attachment instead of carrying base64
#: (base64 has no dot, so the two never mix up).
_A1111_NAME = re.compile(r"[^\W][\w .()+,@=-]*\.(png|jpe?g|webp|gif|bmp|tiff?)", re.IGNORECASE)

#: Magic bytes of the image formats ComfyUI (Pillow) and A1111 read.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"BM", 0, "image/bmp"),
)
KNOWN_TYPES = "PNG, JPEG, WebP, GIF, BMP or TIFF"


def sniff_content_type(data: bytes) -> str | None:
    """The image type of ``data`` from its first bytes, or None when it is no known image."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, offset, content_type in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return content_type
    return None


def check_name(name: object) -> str:
    """Return ``name`` if it is a plain file name an input may have; else :class:`InvalidInput`."""
    if not isinstance(name, str):
        raise InvalidInput(f"an input name must be text, not {type(name).__name__}")
    if not name or len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"input name must be 1..{MAX_NAME_CHARS} characters: {name[:80]!r}")
    if "/" in name or "\\" in name or ".." in name:
        raise InvalidInput(f"input name {name!r} must be a plain file name (no folders, no '..')")
    if not _NAME.fullmatch(name) or name.endswith((" ", ".")):
        raise InvalidInput(
            f"input name {name!r} must start with a letter or digit and hold only letters, "
            "digits, spaces and . _ - ( ) + , @ = (no control characters or brackets)"
        )
    return name


def _read(name: str, value: object, budget: int) -> bytes:
    """The bytes of one input given as bytes or a path, refusing more than ``budget``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, os.PathLike):
        try:
            size = os.stat(value).st_size
            if size > budget:  # refused without reading the file
                raise _TooLarge(size)
            with open(value, "rb") as f:
                data = f.read(budget + 1)
        except OSError as e:
            raise InvalidInput(f"cannot read input {name!r} from {os.fspath(value)}: {e}") from e
    else:
        raise InvalidInput(
            f"input {name!r} must be bytes or a path (pathlib.Path), not {type(value).__name__}"
        )
    if len(data) > budget:
        raise _TooLarge(len(data))
    return data


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def load_inputs(inputs: object, settings: Settings) -> tuple[InputFile, ...]:
    """Check names, read the bytes, sniff the types and apply the per-job cap."""
    if inputs is None:
        return ()
    if not isinstance(inputs, Mapping):
        raise InvalidInput(f"inputs must map file names to bytes or paths, not {inputs!r:.80}")
    if len(inputs) > MAX_INPUT_FILES:
        raise InvalidInput(
            f"a job carries at most {MAX_INPUT_FILES} input files, not {len(inputs)}"
        )
    cap = settings.max_input_bytes
    files: list[InputFile] = []
    seen: set[str] = set()
    total = 0
    for raw_name, value in inputs.items():
        name = check_name(raw_name)
        if name.casefold() in seen:  # two names one file system may see as one file
            raise InvalidInput(f"input name {name!r} is given twice (names ignore case)")
        seen.add(name.casefold())
        try:
            data = _read(name, value, cap - total)
        except _TooLarge as e:
            raise PayloadTooLarge(
                f"input files of the job are over the cap of {_mib(cap)} "
                f"(FLEETQ_MAX_INPUT_BYTES); {name!r} alone is {_mib(e.size)}"
            ) from None
        total += len(data)
        content_type = sniff_content_type(data)
        if content_type is None:
            raise InvalidInput(
                f"input {name!r} is not an image fleetq knows ({KNOWN_TYPES}, by its first bytes)"
            )
        files.append(InputFile(name, content_type, data))
    return tuple(files)


def inputs_from_args(specs: list[str] | None) -> dict[str, Path] | None:
    """``--input NAME=PATH`` (or a bare ``PATH``, which keeps its file name), repeatable, as
    the ``inputs`` of a submit. The files are read (and checked) by the submit itself."""
    if not specs:
        return None
    files: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name, spec
        if not name or not path:
            raise InvalidInput(f"--input takes NAME=PATH or PATH, not {spec!r}")
        if name in files:
            raise InvalidInput(f"--input names {name!r} twice")
        files[name] = Path(path)
    return files


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


# -- where workflows name input files -----------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One place in a workflow that holds a file name (or, for A1111, maybe base64)."""

    container: MutableMapping[str, Any] | MutableSequence[Any]
    key: Any
    where: str
    #: ``comfyui`` (a loader node) or ``a1111`` (a field of the request body).
    backend: str

    @property
    def value(self) -> Any:
        return self.container[self.key]

    def set(self, value: str) -> None:
        self.container[self.key] = value


def comfyui_slots(graph: Mapping[str, Any]) -> Iterator[Slot]:
    """The ``image`` inputs of ``LoadImage`` / ``LoadImageMask`` nodes that hold a file name."""
    for node_id, node in graph.items():
        if not isinstance(node, MutableMapping) or node.get("class_type") not in COMFYUI_LOADERS:
            continue
        inputs = node.get("inputs")
        if isinstance(inputs, MutableMapping) and isinstance(inputs.get("image"), str):
            where = f"node {node_id} ({node['class_type']}) input 'image'"
            yield Slot(inputs, "image", where, "comfyui")


def a1111_slots(body: Mapping[str, Any]) -> Iterator[Slot]:
    """Every string in ``init_images``, ``mask`` and the ControlNet units' image fields."""
    images = body.get("init_images")
    if isinstance(images, MutableSequence):
        for i, value in enumerate(images):
            if isinstance(value, str):
                yield Slot(images, i, f"init_images[{i}]", "a1111")
    if isinstance(body, MutableMapping) and isinstance(body.get("mask"), str):
        yield Slot(body, "mask", "mask", "a1111")
    scripts = body.get("alwayson_scripts")
    if not isinstance(scripts, Mapping):
        return
    for script_name, script in scripts.items():
        # A1111 matches script names without regard to case.
        if str(script_name).lower() != "controlnet" or not isinstance(script, Mapping):
            continue
        units = script.get("args")
        if not isinstance(units, list):
            continue
        for i, unit in enumerate(units):
            if not isinstance(unit, MutableMapping):
                continue
            base = f"alwayson_scripts.{script_name}.args[{i}]"
            for key in ("image", "input_image", "mask", "mask_image"):
                value = unit.get(key)
                if isinstance(value, str):
                    yield Slot(unit, key, f"{base}.{key}", "a1111")
                elif isinstance(value, MutableMapping):  # older units: {"image", "mask"}
                    for inner in ("image", "mask"):
                        if isinstance(value.get(inner), str):
                            yield Slot(value, inner, f"{base}.{key}.{inner}", "a1111")


def a1111_names_file(value: str) -> bool:
    """True when an A1111 image field holds a file name rather than base64 or a URL."""
    return len(value) <= MAX_NAME_CHARS and _A1111_NAME.fullmatch(value) is not None


def references(workflow: Mapping[str, Any], service: str) -> list[Slot]:
    """The slots of ``workflow`` that name input files.

    ComfyUI loaders always name a file; an A1111 field names one when it looks like a file
    name (``photo.png``) instead of base64. A service other than ``comfyui`` and ``a1111``
    (an operator-registered one) is searched both ways.
    """
    found: list[Slot] = []
    if service != "a1111":
        found += comfyui_slots(workflow)
    if service != "comfyui":
        found += [s for s in a1111_slots(workflow) if a1111_names_file(s.value)]
    return found


def check_inputs(
    inputs: object, workflow: Mapping[str, Any], service: str, settings: Settings
) -> tuple[InputFile, ...]:
    """Load and check the inputs of one submit against its (normalised) workflow.

    Raises :class:`InvalidInput` when a reference names no attachment or an attachment is
    named by nothing, :class:`PayloadTooLarge` over the cap. A ComfyUI workflow without
    attachments may name files that the instances already hold (as before inputs existed);
    once a job carries attachments, every loader must name one of them, so the job cannot
    depend on the machine it lands on.
    """
    files = load_inputs(inputs, settings)
    names = {f.name for f in files}
    slots = references(workflow, service)
    used: set[str] = set()
    for slot in slots:
        if slot.value in names:
            used.add(slot.value)
        elif files or slot.backend == "a1111":  # a bare ComfyUI job may name instance files
            attached = ", ".join(sorted(names)) or "none"
            raise InvalidInput(
                f"{slot.where} names {slot.value!r}, which is not attached to the job "
                f"(attached: {attached})"
            )
    unused = sorted(names - used)
    if unused:
        raise InvalidInput(
            f"input(s) {', '.join(map(repr, unused))} attached but not named by the workflow "
            "(ComfyUI: a LoadImage / LoadImageMask 'image' input; A1111: init_images, mask, "
            "or a ControlNet unit's image)"
        )
    return files


def manifest_json(files: tuple[InputFile, ...]) -> str:
    """The job hash's ``inputs`` field: name, content type and size of each file, in order."""
    if not files:
        return ""
    entries = [{"name": f.name, "content_type": f.content_type, "size": len(f.data)} for f in files]
    return json.dumps(entries, separators=(",", ":"))


def parse_manifest(raw: str | None) -> list[dict[str, Any]]:
    """The entries of a job's ``inputs`` field ([] for a job without inputs)."""
    if not raw:
        return []
    entries = json.loads(raw)
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)]
