"""Fixtures for the security tests: a private redis-server with the ACL roles of
scripts/acl_rules.py, and redis-servers with TLS on loopback (a throwaway CA made by openssl)."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

# --import-mode=importlib does not put test folders on sys.path; the helpers module next to
# this file has a unique name ("security_testkit").
sys.path.insert(0, str(Path(__file__).resolve().parent))

from security_testkit import (
    Roles,
    TlsFiles,
    TlsServer,
    load_acl_rules,
    make_tls_files,
    require_redis_server,
    tls_redis,
)

from fleetq.demo.embedded import RedisServer, redis_server_binary, server_has_tls, server_version


@pytest.fixture(scope="session")
def acl_server() -> Iterator[RedisServer]:
    """A redis-server of its own: the ACL users created here stay out of other tests."""
    require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def roles(acl_server: RedisServer) -> Roles:
    acl_rules = load_acl_rules()
    tag = uuid.uuid4().hex[:8]
    namespace = f"acl-{tag}"
    users = {role: f"{role}-{tag}" for role in acl_rules.ROLE_NAMES}
    passwords = {role: f"pw/{role}@{tag}:s3cret" for role in acl_rules.ROLE_NAMES}
    admin = redis.Redis(port=acl_server.port)
    try:
        for line in acl_rules.render(namespace, users, passwords).splitlines():
            if line.startswith("ACL SETUSER "):
                admin.execute_command(*line.split())  # type: ignore[no-untyped-call]
    finally:
        admin.close()
    return Roles(acl_server.port, namespace, users, passwords)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    require_redis_server()
    binary = redis_server_binary()
    if binary is not None and not server_has_tls(binary):
        pytest.skip(f"{server_version(binary)} at {binary} is built without TLS")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_server(tls_files: TlsFiles) -> Iterator[TlsServer]:
    """TLS; clients need not present a certificate."""
    tls = tls_redis(tls_files, "no")
    try:
        yield tls
    finally:
        tls.server.close()


@pytest.fixture(scope="session")
def mtls_server(tls_files: TlsFiles) -> Iterator[TlsServer]:
    """Mutual TLS: clients must present a certificate signed by the CA."""
    tls = tls_redis(tls_files, "yes")
    try:
        yield tls
    finally:
        tls.server.close()
