"""Small leaks and crashes: bounded unknown-field errors, ASCII-only numbers, stream ids in
range, a /readyz and a Server header that tell nothing about the installation."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from fleetq.errors import InvalidArgument
from fleetq.model import Output
from fleetq.validation import check_host_target, is_ascii_int, parse_ascii_int
from fleetq.worker import WorkerQueue
from tests.gateway.gateway_testkit import SpawnGateway

# Superscript two, Arabic-Indic zero, Arabic-Indic one-two, fullwidth three, NKo zero, and a
# mathematical one: all digits to str.isdigit (escaped, so the source stays ASCII).
UNICODE_DIGITS = ["\u00b2", "\u0660", "\u0661\u0662", "\uff13", "\u07c0", "\U0001d7d9"]


async def test_an_unknown_field_error_names_a_few_fields_and_counts_the_rest(
    gw: Any, expect_error: Any, graph: dict[str, Any]
) -> None:
    fields = {f"k{i:06d}" + "x" * 50: 0 for i in range(100_000)}
    data = json.dumps({"workflow": graph, **fields})
    started = time.perf_counter()
    headers = {"Content-Type": "application/json"}
    async with gw.post("/v1/jobs", data=data, headers=headers) as r:
        error = await expect_error(r, 400)
        size = len(await r.read())
    assert time.perf_counter() - started < 10
    assert size < 1000, size
    assert "'k000000" in error["message"] and "and 99995 more" in error["message"]
    assert "x" * 50 not in error["message"]  # each name is cut short


@pytest.mark.parametrize("digit", UNICODE_DIGITS)
def test_ascii_ints_refuse_unicode_digits(digit: str) -> None:
    assert digit.isdigit() or digit.isdecimal() or digit.isnumeric()  # what str methods say
    assert not is_ascii_int(digit)
    with pytest.raises(InvalidArgument, match="ASCII digits"):
        parse_ascii_int(digit, "limit")
    with pytest.raises(InvalidArgument):
        check_host_target(f"box1:{digit}")


def test_parse_ascii_int_bounds() -> None:
    assert parse_ascii_int("0042", "n", 1, 1000) == 42
    for raw in ("", "-1", "+1", " 1", "1 ", "1.0", "1_000", "0x10", "10001", None, 5):
        with pytest.raises(InvalidArgument):
            parse_ascii_int(raw, "n", 1, 1000)
    assert check_host_target("box1:12") == "box1:12"


async def test_unicode_digits_in_the_api_are_400(
    gw: Any, worker: WorkerQueue, expect_error: Any, footprint: Any, graph: dict[str, Any]
) -> None:
    async with gw.post("/v1/jobs", json={"workflow": graph}) as r:
        job_id = (await r.json())["id"]
    claimed = (await worker.try_claim(["comfyui"], "box", 0)).job
    assert claimed is not None
    await worker.complete(claimed, [Output("a.png", "image/png", b"png")])
    async with gw.get(f"/v1/jobs/{job_id}/outputs/0") as r:
        assert r.status == 200 and await r.read() == b"png"
    before = await footprint.take()
    for digit in UNICODE_DIGITS:
        async with gw.get("/v1/jobs", params={"limit": digit}) as r:
            await expect_error(r, 400)  # was a 500 with a traceback
        async with gw.get(f"/v1/jobs/{job_id}/outputs/{digit}") as r:
            await expect_error(r, 400)  # Arabic-Indic zero served file 0
        async with gw.post(f"/v1/fleet/box1:{digit}/drain") as r:
            await expect_error(r, 400)  # was accepted
    await footprint.assert_unchanged(before)


@pytest.mark.parametrize(
    "resume", ["18446744073709551616-0", "1-18446744073709551616", "99999999999999999999"]
)
async def test_an_out_of_range_last_event_id_is_400_before_the_stream_opens(
    gw: Any, expect_error: Any, graph: dict[str, Any], resume: str
) -> None:
    async with gw.post("/v1/jobs", json={"workflow": graph}) as r:
        job_id = (await r.json())["id"]
    for path in ("/v1/events", f"/v1/jobs/{job_id}/events"):
        async with gw.get(path, headers={"Last-Event-ID": resume}) as r:
            error = await expect_error(r, 400)
        assert error["type"] == "InvalidArgument"
    async with gw.get("/v1/events", headers={"Last-Event-ID": "18446744073709551615-0"}) as r:
        assert r.status == 200  # the largest id Redis takes is fine


async def test_answers_do_not_announce_the_server_software(spawn_gateway: SpawnGateway) -> None:
    base = await spawn_gateway()
    async with aiohttp.ClientSession(base) as session:
        for path in ("/healthz", "/v1/stats", "/nope", "/v1/jobs/x"):
            async with session.get(path) as r:
                assert r.headers["Server"] == "fleetq", path
        async with session.get("/readyz") as r:
            assert await r.json() == {"status": "ready"}
    host, port = base.removeprefix("http://").split(":")
    for garbage in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(garbage)  # answered by aiohttp itself, before the application
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.0 400") and b"\r\nServer: fleetq\r\n" in answer
