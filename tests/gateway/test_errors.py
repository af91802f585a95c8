"""Bad input is answered with a JSON error and writes nothing; failures never leak a traceback."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fleetq import Settings
from fleetq.gateway.state import GATEWAY

UI_FORMAT = {
    "last_node_id": 9,
    "nodes": [{"id": 3, "type": "KSampler", "widgets_values": [1, "fixed", 20]}],
    "links": [[1, 4, 0, 3, 0, "MODEL"]],
}


def graph_body(**fields: Any) -> bytes:
    graph = {"1": {"class_type": "EmptyImage", "inputs": {}}}
    return json.dumps({"workflow": graph, **fields}).encode()


BAD_SUBMITS = {
    "malformed JSON": (b'{"workflow": {', "MalformedJSON"),
    "empty body": (b"", "MalformedJSON"),
    "not UTF-8": (b'{"workflow": "\xff"}', "MalformedJSON"),
    "NaN": (b'{"workflow": {}, "priority": NaN}', "MalformedJSON"),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, "MalformedJSON"),
    "array body": (b"[1, 2]", "InvalidArgument"),
    "missing workflow": (b'{"service": "comfyui"}', "InvalidWorkflow"),
    "workflow is a number": (b'{"workflow": 3}', "InvalidWorkflow"),
    "priority is text": (graph_body(priority="high"), "InvalidPriority"),
    "priority is a float": (graph_body(priority=1.5), "InvalidPriority"),
    "priority is a bool": (graph_body(priority=True), "InvalidPriority"),
    "priority out of range": (graph_body(priority=5000), "InvalidPriority"),
    "huge integer": (b'{"workflow": {}, "priority": 1' + b"0" * 5000 + b"}", "MalformedJSON"),
    "unknown service": (graph_body(service="midjourney"), "UnknownService"),
    "service is null": (graph_body(service=None), "UnknownService"),
    "UI-format workflow": (json.dumps({"workflow": UI_FORMAT}).encode(), "InvalidWorkflow"),
    "node without class_type": (b'{"workflow": {"1": {"inputs": {}}}}', "InvalidWorkflow"),
    "graph sent to a1111": (graph_body(service="a1111"), "InvalidWorkflow"),
    "line break in filename_prefix": (
        json.dumps(
            {
                "workflow": {
                    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "a\r\nb"}}
                }
            }
        ).encode(),
        "InvalidWorkflow",
    ),
}


@pytest.mark.parametrize("path", ["/submit", "/v1/jobs"])
@pytest.mark.parametrize("case", list(BAD_SUBMITS), ids=list(BAD_SUBMITS))
async def test_bad_submits_are_refused_and_write_nothing(
    gw: Any, footprint: Any, expect_error: Any, path: str, case: str
) -> None:
    body, kind = BAD_SUBMITS[case]
    before = await footprint.take()
    async with gw.post(path, data=body, headers={"Content-Type": "application/json"}) as r:
        error = await expect_error(r, 400)
    assert error["type"] == kind, error
    await footprint.assert_unchanged(before)


async def test_ui_format_error_says_how_to_export(gw: Any, expect_error: Any) -> None:
    async with gw.post("/submit", json={"workflow": UI_FORMAT}) as r:
        error = await expect_error(r, 400)
    assert "Export (API)" in error["message"]


async def test_body_over_the_cap_is_413_and_writes_nothing(
    make_gateway: Any, footprint: Any, expect_error: Any
) -> None:
    gw = await make_gateway(max_body_bytes=4096)
    before = await footprint.take()
    big = graph_body(metadata={"pad": "x" * 10_000})
    async with gw.post("/submit", data=big, headers={"Content-Type": "application/json"}) as r:
        error = await expect_error(r, 413)
    assert error["type"] == "PayloadTooLarge" and "4096" in error["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off while reading
        for _ in range(10):
            yield b" " * 1000

    chunked = gw.post("/v1/jobs", data=chunks(), headers={"Content-Type": "application/json"})
    async with chunked as r:
        await expect_error(r, 413)
    await footprint.assert_unchanged(before)


async def test_payload_over_the_core_cap_is_413(
    make_gateway: Any, settings: Settings, footprint: Any, expect_error: Any
) -> None:
    small = Settings(
        redis_url=settings.redis_url, namespace=settings.namespace, max_payload_bytes=2048
    )
    gw = await make_gateway(settings_=small)
    before = await footprint.take()
    big = {"1": {"class_type": "CLIPTextEncode", "inputs": {"text": "x" * 4000}}}
    for path in ("/submit", "/v1/jobs"):
        async with gw.post(path, json={"workflow": big}) as r:
            error = await expect_error(r, 413)
        assert "FLEETQ_MAX_PAYLOAD_BYTES" in error["message"]
    await footprint.assert_unchanged(before)


@pytest.mark.parametrize(
    ("method", "path", "status", "kind"),
    [
        ("GET", "/status/0123456789abcdef", 404, "JobNotFound"),
        ("GET", "/status/not-a-job-id", 400, "InvalidJobId"),
        ("GET", "/v1/jobs/0123456789abcdef", 404, "JobNotFound"),
        ("POST", "/v1/jobs/0123456789abcdef/cancel", 404, "JobNotFound"),
        ("POST", "/v1/jobs/0123456789ABCDEF/cancel", 400, "InvalidJobId"),
        ("GET", "/v1/jobs/0123456789abcdef/outputs/0", 404, "JobNotFound"),
        ("GET", "/v1/jobs/0123456789abcdef/events", 404, "JobNotFound"),
        ("GET", "/nowhere", 404, "NotFound"),
        ("DELETE", "/submit", 405, "MethodNotAllowed"),
        ("POST", "/v1/services/../pause", 404, "NotFound"),
    ],
)
async def test_unknown_things(
    gw: Any,
    footprint: Any,
    expect_error: Any,
    method: str,
    path: str,
    status: int,
    kind: str,
) -> None:
    before = await footprint.take()
    async with gw.request(method, path, json={"priority": 1}) as r:
        error = await expect_error(r, status)
        if status == 405:
            assert r.headers["Allow"] == "POST"
    assert error["type"] == kind
    await footprint.assert_unchanged(before)


async def test_an_unexpected_error_is_a_500_without_details(
    gw: Any, expect_error: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(job_id: str) -> None:
        raise RuntimeError("secret internals at /srv/app.py")

    monkeypatch.setattr(gw.app[GATEWAY].client, "status", broken)
    async with gw.get("/status/0123456789abcdef") as r:
        text = await r.text()
        error = await expect_error(r, 500)
    assert error["type"] == "InternalError" and "secret" not in text
    assert "secret internals" in caplog.text  # logged for the operator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_redis_down_is_503(make_gateway: Any, expect_error: Any, graph: Any) -> None:
    down = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=2.0,
                    block_timeout_s=0.5)  # fmt: skip
    gw = await make_gateway(settings_=down)
    for method, path, body in (
        ("POST", "/submit", {"workflow": graph}),
        ("GET", "/status/0123456789abcdef", None),
        ("GET", "/stats", None),
        ("POST", "/v1/jobs/0123456789abcdef/cancel", None),
        ("GET", "/v1/fleet", None),
        ("GET", "/v1/events", None),
        ("GET", "/metrics", None),
    ):
        async with gw.request(method, path, json=body) as r:
            error = await expect_error(r, 503)
            assert r.headers["Retry-After"]
        assert error["type"] == "RedisUnavailable"
        assert "cannot reach Redis" in error["message"]
    async with gw.get("/readyz") as r:  # open to anyone: says only that it is not ready
        error = await expect_error(r, 503)
        assert r.headers["Retry-After"]
    assert error == {"type": "NotReady", "message": "not ready"}
    async with gw.get("/healthz") as r:
        assert r.status == 200
