"""Slow and idle clients cannot hold a gateway process's connections: headers and bodies must
arrive in time, idle connections are closed, and the number of connections is capped."""

from __future__ import annotations

import asyncio
import json

from tests.gateway.gateway_testkit import SpawnGateway

WAIT_S = 10.0


async def connect(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), WAIT_S)


async def test_an_idle_connection_is_closed(spawn_gateway: SpawnGateway) -> None:
    base = await spawn_gateway(header_timeout_s=0.5)
    reader, writer = await connect(base)
    assert await closed_by_server(reader) == b""
    writer.close()


async def test_headers_sent_a_line_at_a_time_are_cut_off(spawn_gateway: SpawnGateway) -> None:
    base = await spawn_gateway(header_timeout_s=0.5)
    reader, writer = await connect(base)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    async def trickle() -> None:
        for i in range(100):  # one more header line every 0.1 s, never the blank line
            writer.write(f"X-Slow-{i}: x\r\n".encode())
            await asyncio.sleep(0.1)

    sender = asyncio.create_task(trickle())
    try:
        assert await closed_by_server(reader) == b""
        assert not sender.done()  # closed while the client was still sending headers
    finally:
        sender.cancel()
        writer.close()


async def test_a_body_sent_too_slowly_is_408(spawn_gateway: SpawnGateway) -> None:
    base = await spawn_gateway(body_timeout_s=0.5)
    reader, writer = await connect(base)
    writer.write(
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{"
    )

    async def trickle() -> None:
        for _ in range(1000):  # one byte every 0.05 s: the 100 kB would take 80 minutes
            writer.write(b" ")
            await asyncio.sleep(0.05)

    sender = asyncio.create_task(trickle())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
        assert head.startswith(b"HTTP/1.1 408 "), head
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        error = json.loads(await reader.readexactly(length))["error"]
        assert error["type"] == "BodyTimeout"
    finally:
        sender.cancel()
        writer.close()


async def test_connections_over_the_cap_get_503_and_are_closed(
    spawn_gateway: SpawnGateway,
) -> None:
    base = await spawn_gateway(max_connections=3, header_timeout_s=30)
    held = [await connect(base) for _ in range(3)]
    # Make sure the gateway has taken all three before the fourth comes.
    for reader, writer in held:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)).startswith(
            b"HTTP/1.1 200"
        )
    reader, writer = await connect(base)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = await closed_by_server(reader)
    writer.close()
    head, _, raw = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 "), answer
    assert b"Retry-After: " in head
    assert json.loads(raw)["error"]["type"] == "TooManyConnections"
    # A connection that ends frees its place.
    held[0][1].close()
    await closed_by_server(held[0][0])
    for _ in range(100):
        reader, writer = await connect(base)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = await closed_by_server(reader)
        writer.close()
        if answer.startswith(b"HTTP/1.1 200"):
            break
        await asyncio.sleep(0.05)  # the server may not have seen the close yet
    assert answer.startswith(b"HTTP/1.1 200"), answer
    for _, w in held[1:]:
        w.close()
