"""Configuration: one frozen settings object, its defaults in one place.

Settings come from keyword arguments, from a Redis URL, or from the environment
(``FLEETQ_`` prefix). Every duration carries its unit in its name.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from fleetq.backoff import BackoffPolicy
from fleetq.cli.parsing import ascii_int, seconds
from fleetq.errors import InvalidArgument
from fleetq.fields import bool_text, setting
from fleetq.outputs.location import parse_store_url

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_SERVICES = ("comfyui", "a1111")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MIB = 1024 * 1024


def service_list(raw: str) -> tuple[str, ...]:
    """``comfyui,a1111``: service names, comma separated."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _flag(raw: str) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise InvalidArgument(f"{raw!r} is not on or off (1/0, true/false, yes/no, on/off)")


def _int(default: int, help: str, **kwargs: Any) -> Any:
    return setting(default, help, flag=False, env=True, parse=ascii_int, **kwargs)


def _secs(default: float, help: str) -> Any:
    return setting(default, help, flag=False, env=True, parse=seconds)


@dataclass(frozen=True)
class Settings:
    """Everything a fleetq client, supervisor or dashboard needs to agree on.

    Example::

        settings = Settings.from_env()          # FLEETQ_REDIS_URL, FLEETQ_NAMESPACE, ...
        settings = Settings(namespace="studio-b", lease_ms=60_000)
    """

    redis_url: str = setting(
        DEFAULT_REDIS_URL, "Redis URL: redis://, rediss:// (TLS), unix://, redis+sentinel:// or "
        "redis+cluster:// (see fleetq.connection)", flag="--redis", toml="redis",
        env=True, repr=False,
    )  # fmt: skip
    #: Left out of ``repr()`` above: the URL may carry a password.
    namespace: str = setting(
        "fleetq", "namespace: several fleets can share one Redis, each under its own",
        flag="--namespace", env=True,
    )  # fmt: skip
    services: tuple[str, ...] = setting(
        DEFAULT_SERVICES, "registered service names; a submit to any other is refused",
        flag=False, env=True, parse=service_list, default_text="comfyui,a1111",
    )  # fmt: skip
    max_payload_bytes: int = _int(
        8 * MIB, "cap on one job's encoded workflow plus metadata", default_text="8 MiB"
    )
    max_input_bytes: int = _int(
        50 * MIB, "cap on one job's input files (images, masks) together", default_text="50 MiB"
    )
    default_max_attempts: int = _int(3, "default max attempts of a job (submit --max-attempts)")
    default_timeout_s: float = _secs(900.0, "default job timeout (submit --timeout)")
    lease_ms: int = _int(30_000, "how long a claimed job stays leased without a renewal")
    retention_s: int = _int(7 * 24 * 3600, "how long finished jobs are kept", default_text="7 days")
    output_ttl_s: int = _int(24 * 3600, "how long output files are kept", default_text="1 day")
    max_output_bytes: int = _int(
        64 * MIB, "cap on one job's outputs kept in Redis", default_text="64 MiB"
    )
    output_store: str = setting(
        "redis", "where output files go: redis, file:///shared/folder or s3://bucket/prefix "
        "(see fleetq.outputs)", flag="--output-store", env=True, metavar="URL",
    )  # fmt: skip
    s3_endpoint_url: str = setting(
        "", "endpoint of an s3:// output store (MinIO, Ceph, R2); empty: AWS", flag=False,
        env=True, default_text="AWS",
    )  # fmt: skip
    s3_region: str = setting(
        "", "region of an s3:// output store; empty: from AWS_REGION or the AWS config",
        flag=False, env=True, default_text="-",
    )  # fmt: skip
    output_url_ttl_s: int = _int(3600, "how long a presigned output URL (result.urls()) is valid")
    events_maxlen: int = _int(10_000, "approximate cap of the fleet event stream")
    #: Live previews of running jobs (fleetq.previews): small, short-lived, rate-limited.
    preview_max_bytes: int = _int(
        512 * 1024, "cap on one live preview image; larger frames are skipped (0: no previews)",
        default_text="512 KiB",
    )  # fmt: skip
    preview_ttl_ms: int = _int(15_000, "how long a live preview is kept unless replaced")
    preview_interval_ms: int = _int(
        500, "a running job's live preview is written at most this often (0: every frame)"
    )
    #: Retry backoff after a job fault: base * 2^(attempt-1), capped, with jitter
    #: (:meth:`job_retry_backoff`).
    backoff_base_ms: int = _int(2_000, "retry backoff after a job fault: first delay")
    backoff_max_ms: int = _int(300_000, "retry backoff after a job fault: longest delay")
    max_lost_leases: int = _int(
        5, "a job whose lease expired this many times (its worker vanished) is failed"
    )
    #: A job that breaks every backend it touches cannot circle forever.
    max_infra_faults: int = _int(
        20, "a job requeued this many times for GPU or backend faults (never charged as "
        "attempts) is failed",
    )  # fmt: skip
    #: Blocking calls always use a shorter block timeout and re-arm.
    socket_timeout_s: float = _secs(15.0, "socket timeout of Redis calls")
    block_timeout_s: float = _secs(5.0, "block timeout of blocking Redis calls")
    #: Fewer within ``wait_timeout_ms`` raises ``NotReplicated``. See docs/OPERATIONS.md for
    #: what it costs and what it does not promise.
    wait_replicas: int = _int(
        0, "replicas to confirm each submit and complete (WAIT; 0: off)", default_text="0 (off)"
    )
    wait_timeout_ms: int = _int(1_000, "how long a submit or complete waits for the replicas")
    #: Warm-model affinity (docs/SCHEDULING.md): a GPU prefers a job that uses the model its
    #: backend has loaded, within these bounds, so affinity never starves anyone.
    affinity: bool = setting(
        True, "warm-model affinity on (off: plain priority then FIFO among the jobs a GPU may "
        "run)", flag=False, env=True, parse=_flag,
    )  # fmt: skip
    affinity_priority_window: int = _int(
        0, "affinity may pass over a better job only within this many priority bands (0: the "
        "same priority only)",
    )  # fmt: skip
    affinity_max_wait_s: float = _secs(
        60.0, "affinity never passes over a job for one that arrived this much later than it"
    )
    #: Off: plain priority then submit order (the benchmark baseline). Read at submit: a job is
    #: tagged (or not) by the client that submits it, so every client of a fleet should agree.
    fair_share: bool = setting(
        True, "fair share between tenants within a priority band (weighted fair queueing); "
        "off: submit order", flag=False, env=True, parse=bool_text, default_text="on",
    )  # fmt: skip

    def __post_init__(self) -> None:
        """Refuse any value the scripts could not use, with the variable to fix: a script that
        fails after its first write is not rolled back (Redis does not undo a script)."""
        if not isinstance(self.redis_url, str) or not self.redis_url.strip():
            raise _invalid("redis_url", self.redis_url, "a redis://, rediss://, unix:// URL")
        if not isinstance(self.namespace, str) or not re.fullmatch(
            r"[A-Za-z0-9_.:-]{1,64}", self.namespace
        ):
            raise InvalidArgument(
                f"namespace {self.namespace!r} must be 1-64 letters, digits or _.:- "
                "(FLEETQ_NAMESPACE)"
            )
        if isinstance(self.services, str) or not self.services:
            raise _invalid("services", self.services, "one or more service names")
        for name in self.services:
            if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
                raise InvalidArgument(
                    f"service name {name!r} must be lowercase letters, digits or _.- "
                    "(at most 63 characters) (FLEETQ_SERVICES)"
                )
        parse_store_url(self.output_store)
        for name, (low, high) in _INT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise _invalid(name, value, f"an integer {low}..{high}")
        for name, (lowest, highest) in _SECONDS_RANGES.items():
            seconds = getattr(self, name)
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, (int, float))
                or not math.isfinite(seconds)
                or not lowest < seconds <= highest
            ):
                raise _invalid(name, seconds, f"a number of seconds > {lowest} and <= {highest}")
        if not isinstance(self.affinity, bool):
            raise _invalid("affinity", self.affinity, "true or false")
        if self.block_timeout_s >= self.socket_timeout_s:
            raise InvalidArgument(
                "block_timeout_s (FLEETQ_BLOCK_TIMEOUT_S) must be shorter than socket_timeout_s "
                "(FLEETQ_SOCKET_TIMEOUT_S)"
            )
        if self.backoff_max_ms < self.backoff_base_ms:
            raise InvalidArgument(
                "backoff_max_ms (FLEETQ_BACKOFF_MAX_MS) must be at least backoff_base_ms "
                "(FLEETQ_BACKOFF_BASE_MS)"
            )
        if self.wait_replicas and self.wait_timeout_ms >= self.socket_timeout_s * 1000:
            raise InvalidArgument(
                "wait_timeout_ms (FLEETQ_WAIT_TIMEOUT_MS) must be shorter than socket_timeout_s"
            )

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
            raw = env.get("FLEETQ_" + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse_env_value(f.name, raw, getattr(cls, f.name, None))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def job_retry_backoff(self) -> BackoffPolicy:
        """The wait before a faulted job runs again: ``backoff_base_ms`` doubling per attempt
        up to ``backoff_max_ms``, each wait shortened by up to half at random."""
        return BackoffPolicy(
            first_s=self.backoff_base_ms / 1000, max_s=self.backoff_max_ms / 1000, jitter=0.5
        )

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None values replaced."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


DAY_S = 24 * 3600
#: Allowed range of every integer setting (inclusive).
_INT_RANGES: Mapping[str, tuple[int, int]] = {
    "max_payload_bytes": (1, 512 * MIB),
    "max_input_bytes": (1, 512 * MIB),
    "default_max_attempts": (1, 100),
    "lease_ms": (1, DAY_S * 1000),
    "retention_s": (1, 10 * 365 * DAY_S),
    "output_ttl_s": (1, 10 * 365 * DAY_S),
    "max_output_bytes": (1, 512 * MIB),
    "output_url_ttl_s": (1, 7 * DAY_S),
    "events_maxlen": (1, 100_000_000),
    "preview_max_bytes": (0, 16 * MIB),
    "preview_ttl_ms": (1, 3_600_000),
    "preview_interval_ms": (0, 3_600_000),
    "backoff_base_ms": (0, DAY_S * 1000),
    "backoff_max_ms": (0, DAY_S * 1000),
    "max_lost_leases": (1, 1_000),
    "max_infra_faults": (1, 1_000),
    "wait_replicas": (0, 100),
    "wait_timeout_ms": (1, 3_600_000),
    "affinity_priority_window": (0, 2_000),
}
#: Allowed range of every duration in seconds (exclusive, inclusive).
_SECONDS_RANGES: Mapping[str, tuple[float, float]] = {
    "default_timeout_s": (0.0, 7 * DAY_S),
    "socket_timeout_s": (0.0, 3600.0),
    "block_timeout_s": (0.0, 3600.0),
    "affinity_max_wait_s": (0.0, 7 * DAY_S),
}


def _invalid(name: str, value: Any, expected: str) -> InvalidArgument:
    return InvalidArgument(
        f"setting {name} (FLEETQ_{name.upper()}) must be {expected}, not {value!r:.80}"
    )


def _parse_env_value(name: str, raw: str, default: Any) -> Any:
    if name == "services":
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(default, bool):
        return _flag(raw)
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as e:
        raise InvalidArgument(f"FLEETQ_{name.upper()}={raw!r} is not a number") from e
    return raw
