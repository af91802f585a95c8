"""ComfyUI's binary WebSocket frames: which of them are sampler previews, and of which prompt.

Layout (``server.py`` / ``protocol.py`` of ComfyUI; ``reference/backends.md`` §1.10): every
binary frame starts with a 4-byte big-endian event id.

- 1 ``PREVIEW_IMAGE``: a 4-byte big-endian format (1 JPEG, 2 PNG), then the image;
- 3 ``TEXT``: progress text of a node (not a preview);
- 4 ``PREVIEW_IMAGE_WITH_METADATA``: a 4-byte big-endian length, that many bytes of JSON
  ``{node_id, prompt_id, display_node_id, parent_node_id, real_node_id, image_type}``, then the
  image; sent instead of 1 to sockets that announced ``supports_preview_metadata``.

Anything else, truncated, or whose bytes are not an image is not a preview (None): a frame a
custom node sends in its own format must never break the run that receives it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from fleetq.previews import sniff_image_type

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
_FORMATS = {1: "image/jpeg", 2: "image/png"}
#: A metadata header is a few hundred bytes; anything much larger is not one.
_METADATA_MAX = 64 * 1024
#: What the adapter sends first on a new socket, so the server names the prompt of each
#: preview (format 4). Servers older than the flag ignore it and send format 1.
FEATURE_FLAGS = json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})


@dataclass(frozen=True)
class PreviewFrame:
    """One preview image; ``prompt_id`` only when the server sent metadata (format 4)."""

    data: bytes
    content_type: str
    prompt_id: str | None = None
    node_id: str | None = None


def parse_binary_frame(payload: bytes) -> PreviewFrame | None:
    """The preview in one binary frame, or None when it is not a (well-formed) preview."""
    if len(payload) < 8:
        return None
    (event,) = struct.unpack_from(">I", payload, 0)
    if event == PREVIEW_IMAGE:
        (image_format,) = struct.unpack_from(">I", payload, 4)
        if image_format not in _FORMATS:
            return None
        return _image(payload[8:], None)
    if event == PREVIEW_IMAGE_WITH_METADATA:
        (length,) = struct.unpack_from(">I", payload, 4)
        if length > _METADATA_MAX or len(payload) < 8 + length:
            return None
        try:
            metadata: Any = json.loads(payload[8 : 8 + length])
        except (ValueError, RecursionError):
            return None
        if not isinstance(metadata, dict):
            return None
        return _image(payload[8 + length :], metadata)
    return None


def _image(data: bytes, metadata: dict[str, Any] | None) -> PreviewFrame | None:
    # The bytes decide the type: a frame whose header and image disagree is not trusted.
    content_type = sniff_image_type(data)
    if content_type is None:
        return None
    if metadata is None:
        return PreviewFrame(data, content_type)
    prompt_id = metadata.get("prompt_id")
    node_id = metadata.get("node_id")
    return PreviewFrame(
        data,
        content_type,
        prompt_id if isinstance(prompt_id, str) else None,
        node_id if isinstance(node_id, str) else None,
    )
