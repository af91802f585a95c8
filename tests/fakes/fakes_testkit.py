"""Helpers for the fake-server tests: workflows, a WebSocket reader, capture loading."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from supervisor.sim.comfyui.workflows import fake_work_workflow

HERE = Path(__file__).resolve().parent
LOCAL_CAPTURES = HERE / "captures"
SHARED_CAPTURES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "reference" / ("comfyui-captures")
)
WAIT_S = 5.0

Message = dict[str, Any]


def capture_path(name: str) -> Path:
    """The capture file ``name``: the copy in tests/fakes/captures, else the shared folder."""
    for folder in (LOCAL_CAPTURES, SHARED_CAPTURES):
        if (folder / name).is_file():
            return folder / name
    pytest.skip(f"capture {name} is in neither {LOCAL_CAPTURES} nor {SHARED_CAPTURES}")


def load_capture(name: str) -> Any:
    """A ``NAME.json`` capture as a dict, or a ``ws_*.jsonl`` capture as a list of lines."""
    path = capture_path(name)
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


def ws_messages(lines: list[dict[str, Any]]) -> list[Message]:
    """The JSON frames of a ``ws_*.jsonl`` capture, in order."""
    return [line["json"] for line in lines if "json" in line]


def normalize(messages: list[Message]) -> list[Message]:
    """Make two runs comparable: prompt ids become P0, P1, ... and timestamps vanish."""
    ids: dict[str, str] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key == "timestamp":
                    continue
                if key == "prompt_id" and isinstance(item, str):
                    out[key] = ids.setdefault(item, f"P{len(ids)}")
                else:
                    out[key] = walk(item)
            return out
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return [walk(message) for message in messages]


def small_workflow(color: int = 0x112233, prefix: str = "probe") -> dict[str, Any]:
    """EmptyImage 64x64 -> SaveImage, as in the captures."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color},
        },
        "2": {
            "class_type": "SaveImage",
            "inputs": {"images": ["1", 0], "filename_prefix": prefix},
        },
    }


def work_workflow(
    seconds: float = 0.0,
    steps: int = 0,
    outcome: str = "ok",
    seed: int = 0,
    prefix: str = "work",
    **extra: Any,
) -> dict[str, Any]:
    """EmptyImage (1) -> FakeWork (2) -> SaveImage (3)."""
    return fake_work_workflow(
        seconds, steps, outcome, seed=seed, filename_prefix=prefix, width=64, height=48, **extra
    )


def chain_workflow(seconds: tuple[float, ...], seed: int = 0) -> dict[str, Any]:
    """EmptyImage (1) -> FakeWork (10, 11, ...) -> SaveImage (2): one node per duration."""
    graph: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": seed},
        }
    }
    source = "1"
    for index, duration in enumerate(seconds):
        node_id = str(10 + index)
        graph[node_id] = {
            "class_type": "FakeWork",
            "inputs": {"image": [source, 0], "seconds": duration, "steps": 0, "outcome": "ok"},
        }
        source = node_id
    graph["2"] = {
        "class_type": "SaveImage",
        "inputs": {"images": [source, 0], "filename_prefix": "chain"},
    }
    return graph


class Socket:
    """A WebSocket to a fake ComfyUI that reads with a timeout and keeps binary frames apart."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.binary: list[bytes] = []
        self.seen: list[Message] = []

    async def next(self, timeout_s: float = WAIT_S) -> Message:
        """The next JSON message (binary frames are collected in ``binary``)."""
        while True:
            frame = await asyncio.wait_for(self.ws.receive(), timeout_s)
            if frame.type == aiohttp.WSMsgType.BINARY:
                self.binary.append(frame.data)
                continue
            if frame.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"websocket ended: {frame.type!r}")
            message: Message = json.loads(frame.data)
            self.seen.append(message)
            return message

    async def until(
        self, predicate: Callable[[Message], bool], timeout_s: float = WAIT_S
    ) -> list[Message]:
        """Messages up to and including the first that matches ``predicate``."""
        collected: list[Message] = []
        while True:
            message = await self.next(timeout_s)
            collected.append(message)
            if predicate(message):
                return collected

    async def until_done(self, prompt_id: str, timeout_s: float = WAIT_S) -> list[Message]:
        """Messages up to ``executing{node: null, prompt_id}``."""
        return await self.until(lambda m: is_done(m, prompt_id), timeout_s)

    async def expect_silence(self, timeout_s: float = 0.2) -> None:
        """Assert that nothing arrives: only for the "receives nothing" cases."""
        try:
            frame = await asyncio.wait_for(self.ws.receive(), timeout_s)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"expected no message, got {frame!r}")


def is_done(message: Message, prompt_id: str) -> bool:
    data = message.get("data", {})
    return (
        message["type"] == "executing"
        and data.get("node", "x") is None
        and data.get("prompt_id") == prompt_id
    )


def of_type(message: Message, kind: str, **data: Any) -> bool:
    return message["type"] == kind and all(message["data"].get(k) == v for k, v in data.items())


def types(messages: list[Message]) -> list[str]:
    return [message["type"] for message in messages]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Parse a PNG into ``(type, payload)`` chunks, checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks = []
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        payload = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF
        chunks.append((kind, payload))
        offset += 12 + length
    return chunks


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """``(width, height, raw scanlines)`` of an 8-bit RGB PNG made by the fakes."""
    chunks = png_chunks(data)
    width, height, depth, color, *_ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color) == (8, 2)
    raw = zlib.decompress(b"".join(payload for kind, payload in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + 3 * width)
    return width, height, raw
