"""Clients, workers and the CLI over ``rediss://`` to a redis-server with TLS on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from urllib.parse import quote

import pytest
from security_testkit import TlsServer

from fleetq import Client, Settings
from fleetq.errors import RedisUnavailable
from fleetq.model import Output
from fleetq.worker import WorkerQueue

BODY = {"prompt": "a lighthouse", "steps": 4}


def tls_url(tls: TlsServer, **params: str) -> str:
    query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in params.items())
    return f"rediss://127.0.0.1:{tls.tls_port}/0" + (f"?{query}" if query else "")


def tls_settings(url: str) -> Settings:
    return Settings(redis_url=url, namespace="tls-" + uuid.uuid4().hex[:8],
                    socket_timeout_s=5.0, block_timeout_s=0.5)  # fmt: skip


@pytest.mark.parametrize("check_hostname", ["false", "true"])
async def test_client_and_worker_over_tls_with_the_ca(
    tls_server: TlsServer, check_hostname: str
) -> None:
    url = tls_url(tls_server, ssl_ca_certs=str(tls_server.files.ca),
                  ssl_check_hostname=check_hostname)  # fmt: skip
    settings = tls_settings(url)
    worker = WorkerQueue(settings)
    try:
        with Client(settings) as client:
            job = client.submit(BODY, service="a1111")
            claimed = (await worker.claim(["a1111"], "tls-host", 0, 1.0)).job
            assert claimed is not None and claimed.id == job.id
            await worker.complete(claimed, [Output("a.png", "image/png", b"tls")])
            result = await asyncio.to_thread(job.wait, 5.0)
            assert result.outputs[0].data == b"tls"
    finally:
        await worker.aclose()


async def test_mutual_tls_with_a_client_certificate(mtls_server: TlsServer) -> None:
    files = mtls_server.files
    url = tls_url(mtls_server, ssl_ca_certs=str(files.ca), ssl_certfile=str(files.client_cert),
                  ssl_keyfile=str(files.client_key))  # fmt: skip
    with Client(tls_settings(url)) as client:
        assert client.stats().total("queued") == 0
    no_cert = tls_settings(tls_url(mtls_server, ssl_ca_certs=str(files.ca)))
    with Client(no_cert) as client, pytest.raises(RedisUnavailable, match="cannot reach Redis"):
        client.stats()


@pytest.mark.parametrize(
    ("make_url", "match"),
    [
        (lambda t: tls_url(t), "certificate verify failed"),
        (lambda t: tls_url(t, ssl_ca_certs="/nonexistent/ca.pem"), "cannot reach Redis"),
        (lambda t: f"redis://127.0.0.1:{t.tls_port}/0", "cannot reach Redis"),
        (lambda t: f"redis://127.0.0.1:{t.tls_port}/0?ssl_ca_certs=/x", "need a rediss:// URL"),
    ],
    ids=["unknown-ca", "missing-ca-file", "plain-to-tls-port", "tls-params-on-redis"],
)
def test_tls_mistakes_are_one_clear_error(
    tls_server: TlsServer, make_url: object, match: str
) -> None:
    url = make_url(tls_server)  # type: ignore[operator]
    with pytest.raises(RedisUnavailable, match=match), Client(tls_settings(url)) as client:
        client.stats()


def test_cli_over_tls(tls_server: TlsServer) -> None:
    url = tls_url(tls_server, ssl_ca_certs=str(tls_server.files.ca))
    done = subprocess.run(
        [sys.executable, "-m", "fleetq.cli.main", "--redis", url, "--namespace", "tls-cli",
         "stats", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"services"' in done.stdout
