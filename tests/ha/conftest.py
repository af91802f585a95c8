"""Fixtures for the high-availability tests: a primary, a replica and three Sentinels."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# --import-mode=importlib does not put test folders on sys.path; the helpers module next to
# this file has a unique name ("ha_testkit").
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_testkit import LocalCluster
from ha_testkit import HaCluster

from fleetq.demo.embedded import INSTALL_HINT, redis_server_binary, server_has_tls, server_version


def _require_tls_server() -> None:
    binary = redis_server_binary()
    if binary is not None and not server_has_tls(binary):
        pytest.skip(f"{server_version(binary)} at {binary} is built without TLS")


def _require_redis_server() -> None:
    if redis_server_binary() is None:
        if os.environ.get("FLEETQ_REQUIRE_REDIS") == "1":
            pytest.fail(f"FLEETQ_REQUIRE_REDIS=1 but no Redis server: {INSTALL_HINT}")
        pytest.skip(f"no Redis server: {INSTALL_HINT}")


@pytest.fixture
def ha() -> Iterator[HaCluster]:
    """A fresh cluster per test: failovers change who is primary."""
    _require_redis_server()
    cluster = HaCluster().start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def ha_with_password() -> Iterator[HaCluster]:
    _require_redis_server()
    cluster = HaCluster(password="ha-s3cret/pw").start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def ha_tls() -> Iterator[HaCluster]:
    """Every link over TLS (clients, replication, Sentinels), and a password on the nodes."""
    _require_redis_server()
    _require_tls_server()
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cluster = HaCluster(password="tls-pw", tls=True).start()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def redis_cluster() -> Iterator[LocalCluster]:
    """A fresh local Redis Cluster per test (3 primaries, 3 replicas): failovers change it."""
    _require_redis_server()
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed (it creates the cluster)")
    cluster = LocalCluster().start()
    try:
        yield cluster
    finally:
        cluster.close()
