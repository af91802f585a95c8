"""Every setting is checked when settings are built: a value the scripts cannot use would make
each of them fail after its first writes (Redis does not roll a script back), e.g. a submit that
raises although its job was queued."""

from __future__ import annotations

import pytest
import redis

from fleetq import Client, Settings
from fleetq.errors import InvalidArgument

BAD = [
    ("FLEETQ_EVENTS_MAXLEN", "-1"),
    ("FLEETQ_EVENTS_MAXLEN", "0"),
    ("FLEETQ_LEASE_MS", "0"),
    ("FLEETQ_RETENTION_S", "-5"),
    ("FLEETQ_MAX_LOST_LEASES", "0"),
    ("FLEETQ_MAX_INFRA_FAULTS", "-1"),
    ("FLEETQ_DEFAULT_MAX_ATTEMPTS", "0"),
    ("FLEETQ_DEFAULT_TIMEOUT_S", "nan"),
    ("FLEETQ_DEFAULT_TIMEOUT_S", "-1"),
    ("FLEETQ_BACKOFF_BASE_MS", "-1"),
    ("FLEETQ_BACKOFF_MAX_MS", "-1"),
    ("FLEETQ_SOCKET_TIMEOUT_S", "inf"),
    ("FLEETQ_BLOCK_TIMEOUT_S", "0"),
    ("FLEETQ_MAX_OUTPUT_BYTES", "0"),
    ("FLEETQ_WAIT_REPLICAS", "-1"),
    ("FLEETQ_SERVICES", ","),
    ("FLEETQ_NAMESPACE", "a b"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_a_bad_setting_is_refused_at_load_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(InvalidArgument, match=name):
        Settings.from_env({name: value})


def test_a_bad_setting_writes_nothing(redis_url: str, namespace: str) -> None:
    env = {"FLEETQ_REDIS_URL": redis_url, "FLEETQ_NAMESPACE": namespace}
    with pytest.raises(InvalidArgument, match="FLEETQ_EVENTS_MAXLEN"):
        Client(Settings.from_env({**env, "FLEETQ_EVENTS_MAXLEN": "-1"}))
    with pytest.raises(InvalidArgument, match="backoff_max_ms"):
        Settings.from_env({**env, "FLEETQ_BACKOFF_BASE_MS": "5000", "FLEETQ_BACKOFF_MAX_MS": "10"})
    r = redis.Redis.from_url(redis_url)
    try:
        assert r.keys("{" + namespace + "}:*") == []
    finally:
        r.close()


def test_valid_edge_values_are_accepted() -> None:
    settings = Settings.from_env(
        {"FLEETQ_EVENTS_MAXLEN": "1", "FLEETQ_BACKOFF_BASE_MS": "0", "FLEETQ_BACKOFF_MAX_MS": "0"}
    )
    assert (settings.events_maxlen, settings.backoff_max_ms) == (1, 0)
