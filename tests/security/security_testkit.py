"""Helpers of the security tests: ACL roles for one namespace, TLS files and servers."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import pytest
import redis

from fleetq import Settings
from fleetq.demo.embedded import INSTALL_HINT, RedisServer, free_port, redis_server_binary

ROOT = Path(__file__).resolve().parents[2]


def require_redis_server() -> None:
    if redis_server_binary() is None:
        if os.environ.get("FLEETQ_REQUIRE_REDIS") == "1":
            pytest.fail(f"FLEETQ_REQUIRE_REDIS=1 but no Redis server: {INSTALL_HINT}")
        pytest.skip(f"no Redis server: {INSTALL_HINT}")


def load_acl_rules() -> ModuleType:
    """scripts/acl_rules.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("acl_rules", ROOT / "scripts" / "acl_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["acl_rules"] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Roles:
    """One namespace with a user per role; ``settings(role)`` connects as that user."""

    port: int
    namespace: str
    users: dict[str, str]
    passwords: dict[str, str]

    def url(self, role: str) -> str:
        user, password = self.users[role], quote(self.passwords[role], safe="")
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"

    def settings(self, role: str, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "redis_url": self.url(role),
            "namespace": self.namespace,
            "socket_timeout_s": 5.0,
            "block_timeout_s": 0.5,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    def admin(self) -> redis.Redis:
        """The default user: sees everything, for checking what a refusal left behind."""
        return redis.Redis(port=self.port)


@dataclass(frozen=True)
class TlsFiles:
    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_tls_files(folder: Path) -> TlsFiles:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "1", "-subj", "/CN=fleetq test CA", cwd=folder)  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, extra in (("server", ("-extfile", "san.cnf")), ("client", ())):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN=fleetq test {name}", cwd=folder)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", *extra,
                 cwd=folder)  # fmt: skip
    return TlsFiles(folder, folder / "ca.pem", folder / "server.pem", folder / "server.key",
                    folder / "client.pem", folder / "client.key")  # fmt: skip


@dataclass
class TlsServer:
    server: RedisServer
    tls_port: int
    files: TlsFiles


def tls_redis(files: TlsFiles, auth_clients: str) -> TlsServer:
    """redis-server with TLS on a loopback port (plain TCP on another, for the readiness
    check). ``auth_clients`` "yes" asks clients for a certificate signed by the CA."""
    require_redis_server()
    tls_port = free_port()
    server = RedisServer(
        extra_args=(
            "--tls-port", str(tls_port), "--tls-cert-file", str(files.server_cert),
            "--tls-key-file", str(files.server_key), "--tls-ca-cert-file", str(files.ca),
            "--tls-auth-clients", auth_clients,
        )
    )  # fmt: skip
    server.start()
    return TlsServer(server, tls_port, files)
