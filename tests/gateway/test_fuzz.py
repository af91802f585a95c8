"""An OpenAPI-driven fuzz run with schemathesis: every operation, generated inputs, and every
answer must match /openapi.json (status code, content type, body) and never be a 500.

The server runs in a thread with its own event loop, because schemathesis calls it with the
blocking ``requests`` library.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from fleetq import Settings
from fleetq.gateway.app import create_app
from fleetq.gateway.openapi import build_openapi

schemathesis = pytest.importorskip(
    "schemathesis",
    reason="schemathesis is not installed (pip install 'schemathesis>=4'); "
    "the OpenAPI fuzz run is skipped",
)
from schemathesis import checks  # noqa: E402
from schemathesis.core import NOT_SET  # noqa: E402

from fleetq.gateway.auth import OPEN_PATHS  # noqa: E402
from fleetq.gateway.guard import SAFE_METHODS  # noqa: E402

TOKEN = "fuzz-token-0123456789abcdef"
OPEN_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
CHECKS = [*OPEN_CHECKS, checks.ignored_auth]
# Streams answer 200 and then run until the client leaves; they have their own tests.
SCHEMA = schemathesis.openapi.from_dict(build_openapi(Settings())).exclude(path_regex=r"/events$")
# Valid inputs and invalid ones (wrong types, out of range, missing fields, bad ids).
SCHEMA.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_in_thread(settings: Settings, tokens: list[str]) -> Iterator[str]:
    """A gateway on a free loopback port, in a thread with its own event loop."""
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        runner = web.AppRunner(create_app(settings, tokens), handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        started.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10), "the gateway did not start"
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def fuzz_settings(redis_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        namespace="fuzz-" + uuid.uuid4().hex[:8],
        socket_timeout_s=5.0,
        block_timeout_s=1.0,
    )


@pytest.fixture(scope="module")
def live_gateway(redis_url: str) -> Iterator[str]:
    """A gateway with a token."""
    yield from serve_in_thread(fuzz_settings(redis_url), [TOKEN])


@pytest.fixture(scope="module")
def open_gateway(redis_url: str) -> Iterator[str]:
    """A gateway without tokens: it checks the Host header."""
    yield from serve_in_thread(fuzz_settings(redis_url), [])


@pytest.mark.slow
@SCHEMA.parametrize()  # type: ignore[untyped-decorator]
@hypothesis_settings(
    max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_every_answer_matches_the_openapi_document(case: Any, live_gateway: str) -> None:
    response = case.call(base_url=live_gateway, headers={"Authorization": f"Bearer {TOKEN}"})
    case.validate_response(response, checks=CHECKS)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
        assert "Traceback" not in response.text


@pytest.mark.slow
@SCHEMA.parametrize()  # type: ignore[untyped-decorator]
@hypothesis_settings(
    max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_hostile_origins_hosts_and_content_types_get_documented_refusals(
    case: Any, live_gateway: str, open_gateway: str
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    write = case.method.upper() not in SAFE_METHODS
    # A web page on another site, through the user's browser.
    response = case.call(base_url=live_gateway, headers={**auth, "Origin": "http://evil.example"})
    case.validate_response(response, checks=CHECKS)
    if write:
        assert response.status_code == 403, response.text
    # A JSON body declared as something a page may send without a preflight.
    if case.body is not NOT_SET:
        for content_type in ("text/plain", "application/x-www-form-urlencoded"):
            headers = {**auth, "Content-Type": content_type}
            response = case.call(base_url=live_gateway, headers=headers)
            case.validate_response(response, checks=CHECKS)
            # 415 for a valid case; a negative one may fail earlier (method, id, token).
            assert 400 <= response.status_code < 500, response.text
    # A DNS-rebinding page: its requests name its own host.
    response = case.call(base_url=open_gateway, headers={"Host": "evil.example:8000"})
    case.validate_response(response, checks=OPEN_CHECKS)
    if case.path not in OPEN_PATHS:
        assert response.status_code == 421, response.text
