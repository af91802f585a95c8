"""Credentials never appear in logs, error messages, the dashboard or the CLI's output.

Every case uses a password that cannot occur by chance in a message, and checks every log
record (at DEBUG, redis-py's own loggers included) as well as the error text.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_testkit import Roles

from fleetq import AsyncClient, Client, Settings
from fleetq.connection import safe_url, scrub
from fleetq.demo.embedded import free_port
from fleetq.errors import FleetqError, PermissionDenied, RedisUnavailable
from fleetq.worker import WorkerQueue

SECRET = "Zq9-s3cret/p@ss:w0rd#?"
QUOTED = quote(SECRET, safe="")


def secret_forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), quote(secret)]


def assert_clean(text: str, secret: str = SECRET) -> None:
    for form in secret_forms(secret):
        assert form not in text, f"secret leaked in: {text!r}"


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    for record in caplog.records:
        assert_clean(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            assert_clean(str(record.exc_info[1]))


DOWN = free_port()
URLS = [
    f"redis://:{QUOTED}@127.0.0.1:{DOWN}/0",
    f"redis://fleet:{QUOTED}@127.0.0.1:{DOWN}/0",
    f"rediss://fleet:{QUOTED}@127.0.0.1:{DOWN}/0?ssl_cert_reqs=none",
    f"redis://127.0.0.1:{DOWN}/0?password={QUOTED}",
    f"redis+sentinel://fleet:{QUOTED}@127.0.0.1:{DOWN},127.0.0.1:{DOWN}/mymaster/0",
    f"redis+sentinel://127.0.0.1:{DOWN}/mymaster?sentinel_password={QUOTED}",
]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.usefixtures("all_logs")
def test_redis_down_errors_name_the_host_but_not_the_password(url: str) -> None:
    assert_clean(safe_url(url))
    assert "127.0.0.1" in safe_url(url)
    with Client(Settings(redis_url=url)) as client, pytest.raises(RedisUnavailable) as caught:
        client.status("0123456789abcdef")
    assert_clean(str(caught.value))
    assert "127.0.0.1" in str(caught.value) or "mymaster" in str(caught.value)


@pytest.mark.parametrize("url", URLS)
@pytest.mark.usefixtures("all_logs")
async def test_redis_down_async_client_and_worker(url: str) -> None:
    settings = Settings(redis_url=url)
    async with AsyncClient(settings) as client:
        with pytest.raises(RedisUnavailable) as caught:
            await client.stats()
        assert_clean(str(caught.value))
    queue = WorkerQueue(settings)
    try:
        with pytest.raises(RedisUnavailable) as caught:
            await queue.claim(["comfyui"], "host", 0, 0.1)
        assert_clean(str(caught.value))
    finally:
        await queue.aclose()


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:pa/ss{QUOTED}@127.0.0.1:{DOWN}/0",  # an unencoded "/" in the password
        f"redis://:{QUOTED}@127.0.0.1:notaport/0",
        f"redis://:{QUOTED}@127.0.0.1:{DOWN}/0?bogus=1",
        f"rediss+sentinel://:{QUOTED}@/svc",
        f"redis+sentinel://:{QUOTED}@127.0.0.1:{DOWN}/svc?unknown={QUOTED}",
        f"http://:{QUOTED}@127.0.0.1/0",
    ],
)
@pytest.mark.usefixtures("all_logs")
def test_malformed_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(FleetqError) as caught:
        Client(Settings(redis_url=url)).status("0123456789abcdef")
    assert_clean(str(caught.value), SECRET)
    assert_clean(str(caught.value), "pa/ss")
    assert "bad Redis URL" in str(caught.value)


def test_settings_repr_leaves_the_url_out() -> None:
    settings = Settings(redis_url=f"redis://:{QUOTED}@127.0.0.1:6379/0")
    assert_clean(repr(settings))


PASSWORDS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40
).map(lambda s: "Q7x" + s)


@given(password=PASSWORDS, user=st.sampled_from(["", "fleet", "we!rd user"]))
@settings(max_examples=300, deadline=None)
def test_safe_url_and_scrub_mask_any_password(password: str, user: str) -> None:
    for url in (
        f"redis://{quote(user, safe='')}:{quote(password, safe='')}@10.0.0.7:6379/0",
        f"redis://{user}:{password}@10.0.0.7:6379/0",  # not encoded, as people write them
        f"redis+sentinel://{user}:{quote(password, safe='')}@h1:26379,h2/svc/0",
        f"redis://10.0.0.7/0?password={quote(password, safe='')}",
    ):
        masked = safe_url(url)
        message = scrub(f"cannot use {url} or its password {password}", url)
        for form in (password, quote(password, safe="")):
            assert form not in masked
            assert form not in message


@given(password=PASSWORDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_redis_down_error_never_holds_a_random_password(password: str) -> None:
    url = f"redis://fleet:{quote(password, safe='')}@127.0.0.1:{DOWN}/0"
    with Client(Settings(redis_url=url)) as client, pytest.raises(RedisUnavailable) as caught:
        client.stats()
    assert password not in str(caught.value)
    assert quote(password, safe="") not in str(caught.value)


@pytest.mark.usefixtures("all_logs")
def test_wrong_password_is_one_clear_error(roles: Roles) -> None:
    url = f"redis://{roles.users['client']}:{QUOTED}@127.0.0.1:{roles.port}/0"
    settings = Settings(redis_url=url, namespace=roles.namespace)
    with Client(settings) as client, pytest.raises(RedisUnavailable) as caught:
        client.stats()
    message = str(caught.value)
    assert "refused the credentials" in message and roles.users["client"] in message
    assert_clean(message)
    assert_clean(message, roles.passwords["client"])


@pytest.mark.usefixtures("all_logs")
async def test_permission_denied_names_the_user_not_the_password(roles: Roles) -> None:
    queue = WorkerQueue(roles.settings("client"))
    try:
        with pytest.raises(PermissionDenied) as caught:
            await queue.try_claim(["comfyui"], "host", 0)
    finally:
        await queue.aclose()
    assert "is not allowed to claim" in str(caught.value)
    assert_clean(str(caught.value), roles.passwords["client"])


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "FLEETQ_LOG_LEVEL": "DEBUG", **(env or {})}
    environment.pop("FLEETQ_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "fleetq.cli.main", *args], env=environment,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.parametrize("where", ["flag", "environment"])
@pytest.mark.parametrize("case", ["down", "wrong-password"])
def test_cli_errors_are_one_line_without_the_password(roles: Roles, where: str, case: str) -> None:
    port = DOWN if case == "down" else roles.port
    url = f"redis://{roles.users['client']}:{QUOTED}@127.0.0.1:{port}/0"
    args = ("--redis", url) if where == "flag" else ()
    env = {"FLEETQ_REDIS_URL": url} if where == "environment" else {}
    done = run_cli(*args, "--namespace", roles.namespace, "stats", env=env)
    assert done.returncode == 1
    assert done.stderr.count("fleetq: error:") == 1 and "Traceback" not in done.stderr
    assert_clean(done.stdout + done.stderr)


def test_supervisor_startup_and_logs_hold_no_password(roles: Roles) -> None:
    """The supervisor's start-up and running logs (DEBUG), with a working password URL and
    with a Redis that is down, never show the password."""
    for url in (roles.url("supervisor"), f"redis://fleet:{QUOTED}@127.0.0.1:{DOWN}/0"):
        secret = roles.passwords["supervisor"] if roles.url("supervisor") == url else SECRET
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetq.cli.main", "--redis", url, "--namespace",
             roles.namespace, "supervisor", "--simulate-gpus", "1", "--host-id", "leak-test",
             "--backend", f"comfyui=http://127.0.0.1:{DOWN}", "--log-level", "DEBUG"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "FLEETQ_LOG_LEVEL": "DEBUG"},
        )  # fmt: skip
        time.sleep(4)  # let it start, probe its backend and touch Redis a few times
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        assert "supervisor" in output
        assert_clean(output, secret)


def test_dashboard_header_masks_the_password() -> None:
    from tui.widgets.summary import FleetSummary

    settings = Settings(redis_url=f"redis://fleet:{QUOTED}@10.1.2.3:6379/0", namespace="n")
    header = FleetSummary(settings, readonly=False)._head().plain
    assert "10.1.2.3" in header
    assert_clean(header)


async def test_backend_credentials_stay_out_of_the_published_host_record(roles: Roles) -> None:
    from supervisor.app import Supervisor
    from supervisor.config import BackendSpec, SupervisorConfig

    config = SupervisorConfig(
        settings=roles.settings("supervisor"),
        host_id="leaky",
        backends=(BackendSpec("a1111", f"http://render:{QUOTED}@127.0.0.1:{DOWN}"),),
        simulate_gpus=1,
        publish_interval_s=0.1,
    )
    supervisor = Supervisor(config)
    task = asyncio.create_task(supervisor.run())
    try:
        await asyncio.wait_for(supervisor.ready.wait(), 30)
        await asyncio.sleep(0.5)
        admin = redis.Redis(port=roles.port)
        keys = [f"{{{roles.namespace}}}:host:leaky", f"{{{roles.namespace}}}:gpus:leaky"]
        published = b"".join(v for v in admin.mget(keys) if isinstance(v, bytes))
        admin.close()
    finally:
        supervisor.request_stop()
        supervisor.request_stop()
        await asyncio.wait_for(task, 60)
    assert published
    assert_clean(published.decode())
