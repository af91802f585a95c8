"""The hardening of a gateway as a real process sees it, end to end over loopback: cross-site
writes, forged names, Unicode digits, out-of-range resume ids and what /readyz says. (The
detailed cases run against in-process servers in test_cross_site.py and test_input_limits.py.)"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.gateway.gateway_testkit import SpawnGateway

EVIL = "http://evil.example"


async def test_a_tokenless_gateway_process_refuses_what_other_sites_could_send(
    spawn_gateway: SpawnGateway, footprint: Any, graph: dict[str, Any]
) -> None:
    base = await spawn_gateway(public_url="https://fleet.example.com")
    before = await footprint.take()
    async with aiohttp.ClientSession(base) as session:
        text = json.dumps({"workflow": graph})
        async with session.post("/v1/jobs", data=text, headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
        headers = {"Origin": EVIL}
        async with session.post("/v1/services/comfyui/pause", headers=headers) as r:
            assert r.status == 403
        async with session.get("/v1/stats", headers={"Host": "evil.example"}) as r:
            assert r.status == 421
        await footprint.assert_unchanged(before)
        async with session.post("/v1/jobs", json={"workflow": graph}) as r:
            assert r.status == 201
            job_id = (await r.json())["id"]
        async with session.get(f"/status/{job_id}") as r:
            assert r.status == 200
        async with session.get("/v1/jobs", params={"limit": "\u00b2"}) as r:
            assert r.status == 400  # was a 500 with a traceback
        async with session.get(
            "/v1/events", headers={"Last-Event-ID": "1-18446744073709551616"}
        ) as r:
            assert r.status == 400  # was a 200 stream that then failed
        async with session.get("/readyz") as r:
            assert await r.json() == {"status": "ready"}
            assert r.headers["Server"] == "fleetq"
