"""Event streams share one Redis reader: they cannot starve the other routes, a client that
leaves frees its slot at once, the number of streams is capped, and 500 open streams leave
``/v1/stats`` fast."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import replace
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from fleetq import Settings
from fleetq.demo.embedded import RedisServer
from fleetq.gateway.state import GATEWAY
from fleetq.worker import WorkerQueue
from tests.gateway.gateway_testkit import SpawnGateway
from tests.gateway.test_streams import next_event, submit
from tests.helpers import eventually
from tests.security.security_testkit import load_acl_rules

STREAMS = 500


class RawStream:
    """One ``GET /v1/events`` over a plain socket: lighter than an HTTP client per stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seen = b""

    @classmethod
    async def open(cls, base: str, path: str = "/v1/events") -> RawStream:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        stream = cls(reader, writer)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 200"), head
        return stream

    async def wait_for(self, fragment: bytes, timeout_s: float = 30) -> None:
        async def read() -> None:
            while fragment not in self.seen:
                chunk = await self.reader.read(65536)
                assert chunk, "the stream ended"
                self.seen += chunk

        await asyncio.wait_for(read(), timeout_s)

    def close(self) -> None:
        self.writer.close()


async def blocked_clients(redis: aioredis.Redis) -> int:
    return int((await redis.info("clients"))["blocked_clients"])


async def test_500_open_streams_leave_the_other_routes_fast(
    spawn_gateway: SpawnGateway, raw_redis: aioredis.Redis, graph: dict[str, Any]
) -> None:
    base = await spawn_gateway()
    streams: list[RawStream] = []
    try:
        # Opened in batches so the client (same 2 cores) does not starve the gateway.
        for _ in range(STREAMS // 50):
            streams += await asyncio.gather(*(RawStream.open(base) for _ in range(50)))
        # However many streams are open, one Redis connection blocks for all of them (before,
        # each held one of the request pool's 100 connections and every other route got 503).
        # (The reader re-arms its read every second: the most of a few samples.)
        assert max([await blocked_clients(raw_redis) for _ in range(10)]) == 1

        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(base, timeout=timeout) as session:
            async with session.post("/v1/jobs", json={"workflow": graph}) as r:
                assert r.status == 201
                job_id = (await r.json())["id"]
            for path in ("/readyz", f"/v1/jobs/{job_id}", "/v1/fleet"):
                async with session.get(path) as r:
                    assert r.status == 200, await r.text()
            times = []
            for _ in range(10):
                started = time.perf_counter()
                async with session.get("/v1/stats") as r:
                    assert r.status == 200
                    assert (await r.json())["queued"] == 1
                times.append(time.perf_counter() - started)
        # Every stream got the submit through the one reader.
        fragment = f'"job":"{job_id}"'.encode()
        await asyncio.gather(*(s.wait_for(fragment) for s in streams))
        assert statistics.median(times) < 0.1, f"/v1/stats took {times}"
    finally:
        for stream in streams:
            stream.close()


async def test_the_stream_over_the_cap_gets_503_and_a_left_stream_frees_its_slot(
    make_gateway: Any, expect_error: Any, graph: dict[str, Any]
) -> None:
    gw = await make_gateway(max_streams=2)
    fanout = gw.app[GATEWAY].fanout
    job_id = await submit(gw, graph)
    async with gw.get("/v1/events") as one, gw.get(f"/v1/jobs/{job_id}/events") as two:
        assert (one.status, two.status) == (200, 200)
        async with gw.get("/v1/events") as three:
            error = await expect_error(three, 503)
            assert error["type"] == "TooManyStreams" and three.headers["Retry-After"]
        async with gw.get("/v1/stats") as r:  # every other route keeps answering
            assert r.status == 200
        assert fanout.subscribers == 2
        two.close()  # the client leaves: its stream ends now, not at its next keep-alive
        await eventually(lambda: fanout.subscribers == 1, timeout_s=5)
        async with gw.get(f"/v1/jobs/{job_id}/events") as again:
            assert again.status == 200
            assert (await next_event(again))["event"] == "status"  # type: ignore[index]
    await eventually(lambda: fanout.subscribers == 0, timeout_s=5)


async def test_subscribers_of_one_job_at_different_points_each_get_their_events(
    gw: Any, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    job_id = await submit(gw, graph)
    async with gw.get(f"/v1/jobs/{job_id}/events") as first:
        assert (await next_event(first))["event"] == "status"  # type: ignore[index]
        claimed = (await worker.try_claim(["comfyui"], "box", 0)).job
        assert claimed is not None
        await worker.renew(claimed, 0.25, "step 5/20")
        claim_event = await next_event(first)
        progress_event = await next_event(first)
        assert claim_event is not None and progress_event is not None
        # A second viewer joins late, resuming after the claim: the reader is already past
        # that point, so the gap (the progress event) is read for it separately.
        headers = {"Last-Event-ID": claim_event["id"]}
        async with gw.get(f"/v1/jobs/{job_id}/events", headers=headers) as late:
            assert (await next_event(late))["event"] == "status"  # type: ignore[index]
            await worker.renew(claimed, 0.5, "step 10/20")
            await worker.complete(claimed, [])
            late_kinds = [e["event"] async for e in events_until_end(late)]
        first_kinds = [e["event"] async for e in events_until_end(first)]
    assert late_kinds == ["progress", "progress", "completed"]
    assert first_kinds == ["progress", "completed"]


async def events_until_end(response: Any) -> Any:
    while (event := await next_event(response)) is not None:
        yield event


async def test_streams_end_with_an_error_event_when_redis_goes_away(
    make_gateway: Any, graph: dict[str, Any]
) -> None:
    with RedisServer() as server:
        settings = Settings(
            redis_url=server.url, namespace="outage", socket_timeout_s=2.0, block_timeout_s=0.5
        )
        gw = await make_gateway(settings_=settings)
        job_id = await submit(gw, graph)
        async with gw.get("/v1/events") as fleet, gw.get(f"/v1/jobs/{job_id}/events") as job:
            assert (await next_event(job))["event"] == "status"  # type: ignore[index]
            await submit(gw, graph)
            assert (await next_event(fleet))["event"] == "submitted"  # type: ignore[index]
            server.stop()
            for stream in (fleet, job):
                event = await next_event(stream, timeout_s=15)
                assert event is not None and event["event"] == "error"
                assert event["data"]["error"]["type"] == "RedisUnavailable"
                assert await next_event(stream, timeout_s=5) is None


async def test_streams_work_for_an_acl_user_without_client_unblock(
    make_gateway: Any,
    settings: Settings,
    raw_redis: aioredis.Redis,
    worker: WorkerQueue,
    graph: dict[str, Any],
) -> None:
    # fleetq's operator role drops @admin, so CLIENT UNBLOCK is refused: a new job stream
    # then waits for the reader's current block to end instead of cutting it short.
    rules = load_acl_rules().user_rules(settings.namespace, "operator", "gw-acl-0123456789")
    await raw_redis.execute_command("ACL", "SETUSER", "fleetq-gw-test", *rules.split())
    try:
        url = settings.redis_url.replace("redis://", "redis://fleetq-gw-test:gw-acl-0123456789@")
        gw = await make_gateway(settings_=replace(settings, redis_url=url))
        fanout = gw.app[GATEWAY].fanout
        job_id = await submit(gw, graph)
        # The reader blocks (on the fleet stream, for the metrics) when the job stream comes.
        await eventually(lambda: fanout._reading and fanout._reader_client_id is not None)
        async with gw.get(f"/v1/jobs/{job_id}/events") as stream:
            assert (await next_event(stream))["event"] == "status"  # type: ignore[index]
            claimed = (await worker.try_claim(["comfyui"], "box", 0)).job
            assert claimed is not None
            event = await next_event(stream)
            assert event is not None and event["event"] == "claimed"
        await eventually(lambda: not fanout._unblock_allowed)  # refused once, then not tried
    finally:
        await raw_redis.execute_command("ACL", "DELUSER", "fleetq-gw-test")
