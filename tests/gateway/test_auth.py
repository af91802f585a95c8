"""Bearer tokens: refused without, refused when wrong, accepted when right, compared in constant
time; token sources for the command line."""

from __future__ import annotations

import argparse
import hmac
from pathlib import Path
from typing import Any

import pytest

from fleetq import Settings
from fleetq.cli.main import common_options
from fleetq.errors import InvalidArgument
from fleetq.gateway import auth
from fleetq.gateway.cli import add_gateway_parser, gateway_command
from fleetq.gateway.options import GatewayOptions

TOKENS = ("first-token-0123456789", "second-token-0123456789")


async def test_without_tokens_the_gateway_is_open(gw: Any) -> None:
    async with gw.get("/stats") as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("header", "invalid"),
    [
        (None, False),
        ("Basic dXNlcjpwYXNz", False),
        ("Bearer ", False),
        ("Bearer wrong-token-0123456789", True),
        ("Bearer first-token-012345678", True),  # a prefix of a real token
        ("Bearer first-token-0123456789x", True),
        ("Bearer ünïcode-token-0123456789", True),
    ],
)
async def test_missing_or_wrong_token_is_401(
    make_gateway: Any, expect_error: Any, header: str | None, invalid: bool
) -> None:
    gw = await make_gateway(tokens=TOKENS)
    headers = {} if header is None else {"Authorization": header}
    for method, path in (("GET", "/stats"), ("POST", "/submit"), ("GET", "/metrics")):
        async with gw.request(method, path, headers=headers, json={}) as r:
            error = await expect_error(r, 401)
            challenge = r.headers["WWW-Authenticate"]
        assert error["type"] == "Unauthorized"
        assert challenge.startswith("Bearer realm=")
        assert ('error="invalid_token"' in challenge) is invalid


async def test_right_token_is_accepted(make_gateway: Any) -> None:
    gw = await make_gateway(tokens=TOKENS)
    for token in TOKENS:
        for scheme in ("Bearer", "bearer"):
            async with gw.get("/stats", headers={"Authorization": f"{scheme} {token}"}) as r:
                assert r.status == 200


async def test_health_and_openapi_stay_open(make_gateway: Any) -> None:
    gw = await make_gateway(tokens=TOKENS)
    for path in ("/healthz", "/readyz", "/openapi.json"):
        async with gw.get(path) as r:
            assert r.status == 200, path


async def test_every_token_is_compared_with_compare_digest(
    make_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("fleetq.gateway.auth.hmac.compare_digest", spy)
    gw = await make_gateway(tokens=TOKENS)
    async with gw.get("/stats", headers={"Authorization": f"Bearer {TOKENS[0]}"}) as r:
        assert r.status == 200
    # Even after the first token matched, the second was compared too: no early exit.
    assert calls == [(TOKENS[0].encode(), t.encode()) for t in TOKENS]


def test_load_tokens_from_flags_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# ops team\nfile-token-0123456789\n\n  second-file-token-0123  \n")
    env = {"FLEETQ_GATEWAY_TOKENS": "env-token-0123456789, file-token-0123456789"}
    tokens = auth.load_tokens(["flag-token-0123456789"], str(path), env)
    assert tokens == (
        "flag-token-0123456789",
        "env-token-0123456789",
        "file-token-0123456789",
        "second-file-token-0123",
    )
    assert auth.load_tokens(env={}) == ()


@pytest.mark.parametrize("bad", ["short", "has space-0123456789", ""])
def test_bad_tokens_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        auth.check_tokens([bad])


def test_missing_tokens_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="cannot read tokens file"):
        auth.load_tokens(tokens_file=str(tmp_path / "nope"), env={})


def test_gateway_sub_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    common = common_options()  # the options every fleetq sub-command takes
    parser = argparse.ArgumentParser(prog="fleetq", parents=[common])
    add_gateway_parser(parser.add_subparsers(dest="command"), common)
    path = tmp_path / "tokens"
    path.write_text("file-token-0123456789\n")
    args = parser.parse_args(
        ["gateway", "--redis", "redis://127.0.0.1:1/0", "--port", "9001",
         "--token", "flag-token-0123456789", "--tokens-file", str(path), "--max-body-bytes", "1000",
         "--public-url", "https://fleet.example.com/", "--allow-host", "gw.internal",
         "--allow-origin", "https://tools.example.com", "--max-streams", "50",
         "--max-connections", "60", "--header-timeout", "5", "--body-timeout", "7.5"]
    )  # fmt: skip
    assert args.delegate is gateway_command
    assert (args.host, args.port, args.redis) == ("127.0.0.1", 9001, "redis://127.0.0.1:1/0")

    seen: dict[str, Any] = {}

    def fake_run(settings: Settings, host: str, port: int, tokens: Any, **kw: Any) -> int:
        seen.update(host=host, port=port, tokens=tuple(tokens), **kw)
        return 0

    monkeypatch.setattr("fleetq.gateway.main.run_gateway", fake_run)
    monkeypatch.delenv("FLEETQ_GATEWAY_TOKENS", raising=False)
    assert args.delegate(args, Settings()) == 0
    assert seen == {
        "host": "127.0.0.1",
        "port": 9001,
        "tokens": ("flag-token-0123456789", "file-token-0123456789"),
        "max_body_bytes": 1000,
        "options": GatewayOptions(
            public_url="https://fleet.example.com",
            allowed_hosts=("gw.internal",),
            allowed_origins=("https://tools.example.com",),
            max_streams=50,
            max_connections=60,
            header_timeout_s=5.0,
            body_timeout_s=7.5,
        ),
    }
    options = seen["options"]
    assert {"gw.internal", "fleet.example.com", "localhost"} <= options.host_names
    assert options.origins == {"https://tools.example.com", "https://fleet.example.com"}
    for bad in (["--port", "70000"], ["--port", "\u0668\u0660"], ["--max-streams", "\u00b2"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["gateway", *bad])
