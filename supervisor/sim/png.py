"""A tiny PNG encoder (stdlib zlib only) for the images the fake backends hand out.

The fakes draw solid colours, so rows repeat and the encoder streams them through one
compressor: a 16384x16384 image costs one row of memory, not the whole bitmap.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ROWS_PER_CHUNK = 256


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def rgb_from_int(color: int) -> tuple[int, int, int]:
    """Split a 24-bit ``0xRRGGBB`` integer (ComfyUI's colour widget) into channels."""
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF


def encode_solid_png(
    width: int,
    height: int,
    rgb: tuple[int, int, int],
    text: Mapping[str, str] | None = None,
) -> bytes:
    """Encode a ``width`` x ``height`` 8-bit RGB PNG filled with one colour.

    ``text`` entries become ``tEXt`` chunks (A1111 stores its infotext under ``parameters``,
    ComfyUI stores ``prompt`` and ``workflow``); values are written as Latin-1 with anything
    outside it replaced, as the PNG spec requires for ``tEXt``.
    """
    if width < 1 or height < 1:
        raise ValueError(f"PNG size must be positive, got {width}x{height}")
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    parts = [PNG_SIGNATURE, _chunk(b"IHDR", header)]
    for key, value in (text or {}).items():
        payload = key.encode("latin-1", "replace")[:79] + b"\x00"
        payload += value.encode("latin-1", "replace")
        parts.append(_chunk(b"tEXt", payload))
    row = b"\x00" + bytes(rgb) * width
    compressor = zlib.compressobj(6)
    compressed: list[bytes] = []
    remaining = height
    block = row * min(height, _ROWS_PER_CHUNK)
    while remaining > 0:
        rows = min(remaining, _ROWS_PER_CHUNK)
        compressed.append(compressor.compress(block if rows == _ROWS_PER_CHUNK else row * rows))
        remaining -= rows
    compressed.append(compressor.flush())
    parts.append(_chunk(b"IDAT", b"".join(compressed)))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def png_size(data: bytes) -> tuple[int, int]:
    """Return ``(width, height)`` from a PNG's IHDR; raise ``ValueError`` if it is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def png_first_pixel(data: bytes) -> tuple[int, int, int] | None:
    """The colour of the first pixel of an 8-bit RGB PNG (what :func:`encode_solid_png`
    writes), or None for any other PNG. Only the first row is inflated."""
    try:
        width, _ = png_size(data)
    except ValueError:
        return None
    if data[24:26] != b"\x08\x02":  # bit depth 8, colour type 2 (RGB)
        return None
    idat = []
    offset = 8
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"IDAT":
            idat.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    try:
        row = zlib.decompressobj().decompress(b"".join(idat), 1 + 3 * width)
    except zlib.error:
        return None
    if len(row) < 4 or row[0] != 0:  # filter type 0 (None), as the encoder writes
        return None
    return row[1], row[2], row[3]
