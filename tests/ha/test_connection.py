"""How clients connect and what they see when Redis cannot take a write: Sentinel URLs, Unix
sockets, a full Redis (noeviction), a primary short of replicas (min-replicas-to-write), a
replica given as the primary, and a blocked claim whose primary is demoted."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import redis
from ha_testkit import until

from fleetq import Client, Settings
from fleetq.connection import parse_sentinel_url, permission_denied
from fleetq.demo.embedded import RedisServer, redis_server_binary
from fleetq.errors import InvalidArgument, PermissionDenied, RedisUnavailable
from fleetq.worker import WorkerQueue

BODY = {"prompt": "a lighthouse", "steps": 4}
needs_redis = pytest.mark.skipif(redis_server_binary() is None, reason="no redis-server")


def settings_for(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"redis_url": url, "namespace": "c-" + uuid.uuid4().hex[:8],
                                 "socket_timeout_s": 5.0, "block_timeout_s": 0.5}  # fmt: skip
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_sentinel_urls_parse() -> None:
    target = parse_sentinel_url(
        "redis+sentinel://render:p%40ss%2Fw@10.0.0.1:26380,sentinel-b,[::1]:26381/fleet/3"
        "?sentinel_password=s%26p&sentinel_username=watch"
    )
    assert target.sentinels == (("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 26381))
    assert (target.service_name, target.db, target.username, target.password) == (
        "fleet", 3, "render", "p@ss/w",
    )  # fmt: skip
    assert (target.sentinel_username, target.sentinel_password, target.ssl) == (
        "watch", "s&p", False,
    )  # fmt: skip
    assert "p@ss" not in repr(target) and "s&p" not in repr(target)
    tls = parse_sentinel_url(
        "rediss+sentinel://h/fleet?ssl_ca_certs=/etc/ca.pem&ssl_check_hostname=false"
    )
    assert tls.ssl and tls.db == 0 and tls.username is None
    assert tls.ssl_options == {"ssl_ca_certs": "/etc/ca.pem", "ssl_check_hostname": False}


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("redis+sentinel:///fleet", "at least one Sentinel"),
        ("redis+sentinel://h:26379", "ends with /service_name"),
        ("redis+sentinel://h:26379/", "ends with /service_name"),
        ("redis+sentinel://h/a/b/c", "ends with /service_name"),
        ("redis+sentinel://h/fleet/x", "must be a number"),
        ("redis+sentinel://h:99999/fleet", "not a port number"),
        ("redis+sentinel://h:port/fleet", "not a port number"),
        ("redis+sentinel://h,/fleet", "empty Sentinel host"),
        ("redis+sentinel://h/fleet?socket_timeout=1", "unknown Sentinel URL parameter"),
        ("rediss+sentinel://h/fleet?ssl_check_hostname=maybe", "takes true or false"),
    ],
)
def test_bad_sentinel_urls_are_one_clear_error(url: str, match: str) -> None:
    with pytest.raises(RedisUnavailable, match=f"bad Redis URL .*{match}"):
        Client(Settings(redis_url=url))


def test_wait_settings_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="wait_replicas"):
        Settings(wait_replicas=-1)
    with pytest.raises(InvalidArgument, match="wait_timeout_ms"):
        Settings(wait_replicas=1, wait_timeout_ms=20_000, socket_timeout_s=15.0)
    settings = Settings.from_env({"FLEETQ_WAIT_REPLICAS": "2", "FLEETQ_WAIT_TIMEOUT_MS": "250"})
    assert (settings.wait_replicas, settings.wait_timeout_ms) == (2, 250)


@pytest.mark.parametrize(
    "message",
    [
        "NOPERM this user has no permissions to access one of the keys used as arguments",
        "The user executing the script can't access at least one of the keys mentioned in the "
        "command arguments script: 1234, on @user_script:12.",
        "ERR ACL failure in script: No permissions to access a key script: 1234",
    ],
    ids=["7.0-declared-keys", "7.0-in-script", "7.2-in-script"],
)
def test_acl_refusals_of_every_redis_version_are_permission_denied(message: str) -> None:
    settings = Settings(redis_url="redis://render:secret@h:6379/0", namespace="studio")
    denied = permission_denied(settings, redis.exceptions.ResponseError(message), "claim")
    assert isinstance(denied, PermissionDenied)
    assert "'render' is not allowed to claim in namespace 'studio'" in str(denied)
    assert "script: 1234" not in str(denied)
    assert permission_denied(settings, redis.exceptions.ResponseError("WRONGTYPE x"), "x") is None


@needs_redis
def test_unix_socket_urls(tmp_path: Path) -> None:
    socket = tmp_path / "redis.sock"
    with (
        RedisServer(extra_args=("--unixsocket", str(socket), "--unixsocketperm", "700")),
        Client(settings_for(f"unix://{socket}?db=0")) as client,
    ):
        job = client.submit(BODY, service="a1111")
        assert client.status(job.id).position == 0


@needs_redis
def test_a_full_redis_refuses_submits_with_a_clear_error() -> None:
    """maxmemory with noeviction (the setting fleetq needs) refuses writes with OOM."""
    with RedisServer(extra_args=("--maxmemory", "3mb")) as server:
        with Client(settings_for(server.url)) as client, pytest.raises(RedisUnavailable) as e:
            for _ in range(100):
                client.submit({**BODY, "prompt": "x" * 200_000}, service="a1111")
        assert "out of memory" in str(e.value) and "noeviction" in str(e.value)


@needs_redis
def test_min_replicas_to_write_refuses_submits_with_a_clear_error() -> None:
    with (
        RedisServer(extra_args=("--min-replicas-to-write", "1")) as server,
        Client(settings_for(server.url)) as client,
        pytest.raises(RedisUnavailable, match="min-replicas-to-write"),
    ):
        client.submit(BODY, service="a1111")


@needs_redis
async def test_a_replica_given_as_the_primary_and_a_demoted_primary() -> None:
    with RedisServer() as primary, RedisServer() as other:
        settings = settings_for(primary.url)
        queue = WorkerQueue(settings)
        try:
            waiting = asyncio.ensure_future(queue.claim(["a1111"], "h", 0, 5.0))
            await asyncio.sleep(0.2)  # let the claim block on its wake-up marker
            demote = redis.Redis(port=primary.port)
            demote.replicaof("127.0.0.1", str(other.port))
            # The blocked BZPOPMIN is released with -UNBLOCKED: a connection-level error.
            with pytest.raises(RedisUnavailable):
                await asyncio.wait_for(waiting, 10)
            until(lambda: demote.info("replication")["master_link_status"] == "up", 10, "sync")
            demote.close()
            with Client(settings) as client, pytest.raises(RedisUnavailable, match="read-only"):
                client.submit(BODY, service="a1111")
        finally:
            await queue.aclose()
