"""Configuration: one frozen settings object, its defaults in one place.

Settings come from keyword arguments, from a Redis URL, or from the environment
(``FLEETQ_`` prefix). Every duration carries its unit in its name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from fleetq.errors import InvalidArgument

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_SERVICES = ("comfyui", "a1111")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything a fleetq client, supervisor or dashboard needs to agree on.

    Example::

        settings = Settings.from_env()          # FLEETQ_REDIS_URL, FLEETQ_NAMESPACE, ...
        settings = Settings(namespace="studio-b", lease_ms=60_000)
    """

    #: ``redis://``, ``rediss://`` (TLS), ``unix://`` or ``redis+sentinel://`` (see
    #: :mod:`fleetq.connection`). Left out of ``repr()``: it may carry a password.
    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)
    #: Several fleets can share one Redis; every key of a fleet lives under ``{namespace}``.
    namespace: str = "fleetq"
    #: Registered service names; a submit to any other name is refused.
    services: tuple[str, ...] = DEFAULT_SERVICES
    #: Cap on the encoded workflow plus metadata of one job.
    max_payload_bytes: int = 8 * MIB
    default_max_attempts: int = 3
    default_timeout_s: float = 900.0
    #: How long a claimed job stays leased without a renewal.
    lease_ms: int = 30_000
    #: How long finished jobs (completed, failed, cancelled) are kept.
    retention_s: int = 7 * 24 * 3600
    #: How long output files are kept, and the cap on one job's outputs.
    output_ttl_s: int = 24 * 3600
    max_output_bytes: int = 64 * MIB
    #: Approximate cap of the fleet event stream.
    events_maxlen: int = 10_000
    #: Retry backoff after a job fault: base * 2^(attempt-1), capped, with jitter.
    backoff_base_ms: int = 2_000
    backoff_max_ms: int = 300_000
    #: A job whose lease expired this many times (its worker vanished) is failed.
    max_lost_leases: int = 5
    #: A job requeued this many times for faults of GPUs or backends (never charged as
    #: attempts) is failed: a job that breaks every backend it touches cannot circle forever.
    max_infra_faults: int = 20
    #: Socket timeout; blocking calls always use a shorter block timeout and re-arm.
    socket_timeout_s: float = 15.0
    block_timeout_s: float = 5.0
    #: After a submit and a complete, ``WAIT`` for this many replicas to confirm the write
    #: (0: never wait); fewer within ``wait_timeout_ms`` raises ``NotReplicated``. See
    #: docs/OPERATIONS.md for what it costs and what it does not promise.
    wait_replicas: int = 0
    wait_timeout_ms: int = 1_000
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.namespace):
            raise InvalidArgument(
                f"namespace {self.namespace!r} must be 1-64 letters, digits or _.:-"
            )
        for name in self.services:
            if not NAME_PATTERN.fullmatch(name):
                raise InvalidArgument(
                    f"service name {name!r} must be lowercase letters, digits or _.- "
                    "(at most 63 characters)"
                )
        if self.block_timeout_s >= self.socket_timeout_s:
            raise InvalidArgument("block_timeout_s must be shorter than socket_timeout_s")
        if self.wait_replicas < 0:
            raise InvalidArgument("wait_replicas must be 0 (off) or a number of replicas")
        if self.wait_replicas and self.wait_timeout_ms >= self.socket_timeout_s * 1000:
            raise InvalidArgument("wait_timeout_ms must be shorter than socket_timeout_s")
        for name in ("max_payload_bytes", "lease_ms", "retention_s", "output_ttl_s",
                     "wait_timeout_ms"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"{name} must be positive")

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> Settings:
        """Settings for the Redis at ``url``, other values from ``overrides`` or defaults."""
        return cls(redis_url=url, **overrides)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``FLEETQ_*`` environment variables; ``overrides`` win.

        ``FLEETQ_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), ``FLEETQ_NAMESPACE``,
        ``FLEETQ_SERVICES`` (comma separated), and ``FLEETQ_<FIELD>`` for every numeric field,
        e.g. ``FLEETQ_LEASE_MS=60000``.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get("FLEETQ_" + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse_env_value(f.name, raw, getattr(cls, f.name, None))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None values replaced."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _parse_env_value(name: str, raw: str, default: Any) -> Any:
    if name == "services":
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes", "on")
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as e:
        raise InvalidArgument(f"FLEETQ_{name.upper()}={raw!r} is not a number") from e
    return raw
