"""Other web sites cannot write through the user's browser: JSON bodies must say
``application/json``, writes from a foreign ``Origin`` are refused, a tokenless gateway answers
only to its own host names, and output URLs never come from the ``Host`` header."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils

from fleetq import Settings
from fleetq.errors import InvalidArgument
from fleetq.gateway.app import create_app
from fleetq.gateway.options import GatewayOptions
from fleetq.model import Output
from fleetq.worker import WorkerQueue

TOKEN = "cross-site-token-0123456789"
EVIL = "http://evil.example"


def body(graph: dict[str, Any]) -> str:
    return json.dumps({"workflow": graph})


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
@pytest.mark.parametrize("path", ["/submit", "/v1/jobs"])
async def test_a_json_body_of_another_content_type_is_415_and_writes_nothing(
    gw: Any,
    footprint: Any,
    expect_error: Any,
    graph: dict[str, Any],
    path: str,
    content_type: str | None,
) -> None:
    before = await footprint.take()
    # What a form or fetch() on any web site can send without a CORS preflight.
    headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
    async with gw.post(path, data=body(graph).encode(), headers=headers) as r:
        if path == "/v1/jobs" and content_type and content_type.startswith("multipart/"):
            # /v1/jobs takes multipart uploads (the guard's Origin rule keeps web pages out):
            # this body is no multipart body.
            error = await expect_error(r, 400)
            assert error["type"] == "MalformedMultipart"
        else:
            error = await expect_error(r, 415)
            assert error["type"] == "UnsupportedMediaType"
    await footprint.assert_unchanged(before)


async def test_a_multipart_submit_from_another_site_is_refused(
    gw: Any, footprint: Any, expect_error: Any, graph: dict[str, Any]
) -> None:
    """A web page can post a multipart form anywhere; its browser names the page's origin."""
    before = await footprint.take()
    form = aiohttp.FormData()
    form.add_field("job", body(graph), content_type="application/json")
    async with gw.post("/v1/jobs", data=form, headers={"Origin": EVIL}) as r:
        await expect_error(r, 403)
    await footprint.assert_unchanged(before)


async def test_json_with_a_charset_is_accepted(gw: Any, graph: dict[str, Any]) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    async with gw.post("/v1/jobs", data=body(graph), headers=headers) as r:
        assert r.status == 201


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/services/comfyui/pause"),
        ("POST", "/v1/fleet/box1/drain"),
        ("POST", "/v1/jobs"),
        ("POST", "/submit"),
    ],
)
async def test_writes_from_a_foreign_origin_are_403_and_write_nothing(
    make_gateway: Any,
    footprint: Any,
    expect_error: Any,
    graph: dict[str, Any],
    method: str,
    path: str,
) -> None:
    for gw, auth in (
        (await make_gateway(), {}),
        (await make_gateway(tokens=[TOKEN]), {"Authorization": f"Bearer {TOKEN}"}),
    ):
        before = await footprint.take()
        for origin in (EVIL, "null", "http://127.0.0.1:9"):
            headers = {**auth, "Origin": origin}
            async with gw.request(method, path, json={"workflow": graph}, headers=headers) as r:
                error = await expect_error(r, 403)
            assert error["type"] == "Forbidden" and "origin" in error["message"]
        await footprint.assert_unchanged(before)


async def test_allowed_origins_and_reads_from_any_origin_pass(
    make_gateway: Any, graph: dict[str, Any]
) -> None:
    gw = await make_gateway(
        allowed_origins=("https://tools.example.com",), public_url="https://fleet.example.com"
    )
    for origin in ("https://tools.example.com", "https://fleet.example.com"):
        headers = {"Origin": origin}
        async with gw.post("/v1/services/comfyui/pause", headers=headers) as r:
            assert r.status == 200, await r.text()
    async with gw.get("/v1/stats", headers={"Origin": EVIL}) as r:
        assert r.status == 200  # a read; without CORS headers the page cannot see it anyway
        assert "Access-Control-Allow-Origin" not in r.headers
    async with gw.options("/v1/jobs", headers={"Origin": EVIL}) as r:
        assert r.status == 405  # no preflight is ever granted


async def test_a_tokenless_gateway_answers_only_to_its_own_host_names(
    make_gateway: Any, expect_error: Any
) -> None:
    gw = await make_gateway(allowed_hosts=("gw.internal",))
    port = gw.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "[::1]", "GW.internal.", "gw.internal"):
        async with gw.get("/v1/stats", headers={"Host": host}) as r:
            assert r.status == 200, host
    # A DNS-rebinding page's requests carry its own host name.
    for host in (f"evil.example:{port}", "127.0.0.1.evil.example", "localhost:x", "[::1"):
        async with gw.get("/v1/stats", headers={"Host": host}) as r:
            error = await expect_error(r, 421)
        assert error["type"] == "MisdirectedRequest", host
    for path in ("/healthz", "/readyz", "/openapi.json"):  # probes may use any name
        async with gw.get(path, headers={"Host": "10.0.0.7:8000"}) as r:
            assert r.status == 200
    # With tokens, the token is the protection: any name is served.
    guarded = await make_gateway(tokens=[TOKEN])
    headers = {"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"}
    async with guarded.get("/v1/stats", headers=headers) as r:
        assert r.status == 200


async def test_the_address_a_client_connected_to_is_an_accepted_host(
    settings: Settings, expect_error: Any
) -> None:
    # As for a gateway bound to 0.0.0.0 and reached by IP: that IP is no rebinding page's name.
    server = test_utils.TestServer(create_app(settings), host="127.0.0.2")
    async with test_utils.TestClient(server) as gw:
        async with gw.get("/v1/stats", headers={"Host": f"127.0.0.2:{gw.port}"}) as r:
            assert r.status == 200
        async with gw.get("/v1/stats", headers={"Host": f"127.0.0.3:{gw.port}"}) as r:
            await expect_error(r, 421)


async def test_output_urls_come_from_configuration_never_from_host(
    make_gateway: Any, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    plain = await make_gateway(tokens=[TOKEN])
    public = await make_gateway(tokens=[TOKEN], public_url="https://fleet.example.com/api/")
    async with plain.post("/v1/jobs", json={"workflow": graph}, headers=auth) as r:
        job_id = (await r.json())["id"]
    claimed = (await worker.try_claim(["comfyui"], "box", 0)).job
    assert claimed is not None and claimed.id == job_id
    await worker.complete(claimed, [Output("a.png", "image/png", b"png")])

    forged = {**auth, "Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    for gw, base in (
        (plain, f"http://127.0.0.1:{plain.port}"),
        (public, "https://fleet.example.com/api"),
    ):
        async with gw.get(f"/v1/jobs/{job_id}", headers=forged) as r:
            url = (await r.json())["outputs"][0]["url"]
        assert url == f"{base}/v1/jobs/{job_id}/outputs/0"
        async with gw.get(f"/status/{job_id}", headers=forged) as r:
            assert (await r.json())["result"][0]["url"] == url


def test_configured_names_and_origins_are_normalized_and_checked() -> None:
    options = GatewayOptions(
        allowed_hosts=("GW.Internal:8000", "[fd00::1]:80", "fd00::2", "box."),
        allowed_origins=("https://Tools.example.com:443/",),
        public_url="http://fleet.example.com:8080/q/",
    ).checked()
    assert {"gw.internal", "fd00::1", "fd00::2", "box", "fleet.example.com"} <= options.host_names
    assert options.origins == {"https://tools.example.com", "http://fleet.example.com:8080"}
    assert options.public_url == "http://fleet.example.com:8080/q"
    for bad in (
        {"allowed_origins": ("https://x.example/path",)},
        {"allowed_origins": ("ftp://x.example",)},
        {"public_url": "fleet.example.com"},
        {"public_url": "https://user:pw@fleet.example.com"},
        {"allowed_hosts": ("",)},
        {"max_streams": 0},
    ):
        with pytest.raises(InvalidArgument):
            GatewayOptions(**bad).checked()
