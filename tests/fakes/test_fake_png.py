"""The stdlib PNG encoder of the fakes."""

from __future__ import annotations

import pytest
from fakes_testkit import png_chunks, png_pixels

from supervisor.sim.png import encode_solid_png, png_size, rgb_from_int


@pytest.mark.parametrize(("width", "height"), [(1, 1), (64, 48), (3, 700), (1000, 2)])
def test_encodes_a_valid_solid_png(width, height):
    data = encode_solid_png(width, height, (10, 20, 30))
    assert png_size(data) == (width, height)
    decoded_width, decoded_height, raw = png_pixels(data)
    assert (decoded_width, decoded_height) == (width, height)
    row = b"\x00" + bytes((10, 20, 30)) * width
    assert raw == row * height


def test_text_chunks_come_before_the_image_data():
    data = encode_solid_png(2, 2, (0, 0, 0), {"parameters": "a cat\nSteps: 20", "ünï": "çødé"})
    kinds = [kind for kind, _ in png_chunks(data)]
    assert kinds == [b"IHDR", b"tEXt", b"tEXt", b"IDAT", b"IEND"]
    texts = [payload for kind, payload in png_chunks(data) if kind == b"tEXt"]
    assert texts[0] == b"parameters\x00a cat\nSteps: 20"
    assert texts[1] == "ünï".encode("latin-1") + b"\x00" + "çødé".encode("latin-1")


def test_large_images_stay_cheap():
    data = encode_solid_png(4096, 4096, (1, 2, 3))
    assert png_size(data) == (4096, 4096)
    assert len(data) < 200_000


def test_rejects_empty_sizes_and_non_png():
    with pytest.raises(ValueError):
        encode_solid_png(0, 10, (0, 0, 0))
    with pytest.raises(ValueError):
        png_size(b"GIF89a")


def test_rgb_from_int():
    assert rgb_from_int(0x112233) == (0x11, 0x22, 0x33)
