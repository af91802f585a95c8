"""Tenants: who a job is for. Fair share (docs/SCHEDULING.md) is between tenants.

A tenant is a plain short name. A job names it with ``tenant=`` on submit; without one, the
``"tenant"`` key of its metadata (when it holds a name), else ``"default"``. Operators may give a
tenant a weight (default 1): within one priority band, tenants with queued jobs are served in
proportion to their weights. Weights live in the fleet-wide hash ``tenants`` (name -> weight),
read at submit, so a change applies to the jobs submitted after it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from fleetq.errors import InvalidArgument

DEFAULT_TENANT = "default"
#: Letters, digits and ``_.-`` (no ``:``, which separates fields of the fair-share hashes).
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: The weight range: the virtual-time quantum of a job is round(1000 / weight), at least 1, so
#: the smallest weight bounds how fast tags grow (see fleetq/lua/lib/fair.lua).
WEIGHT_MIN = 0.1
WEIGHT_MAX = 1000.0
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")


def check_tenant(tenant: object, source: str = "tenant") -> str:
    """Return ``tenant`` if it is a plain short name; raise ``InvalidArgument`` otherwise."""
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidArgument(
            f"{source} {tenant!r:.80} must be 1-64 letters, digits or _.- "
            "(starting with a letter or digit)"
        )
    return tenant


def tenant_of(tenant: object, metadata: object) -> str:
    """The tenant of a submit: ``tenant`` if given, else metadata's ``"tenant"``, else default."""
    if tenant is not None:
        return check_tenant(tenant)
    if isinstance(metadata, Mapping) and metadata.get("tenant") is not None:
        return check_tenant(metadata["tenant"], 'tenant (from the metadata key "tenant")')
    return DEFAULT_TENANT


def check_weight(weight: object) -> float:
    """A tenant weight: a number in ``WEIGHT_MIN..WEIGHT_MAX``."""
    if isinstance(weight, str) and _NUMBER.fullmatch(weight.strip()):
        weight = float(weight)
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not math.isfinite(weight)
        or not WEIGHT_MIN <= weight <= WEIGHT_MAX
    ):
        raise InvalidArgument(
            f"a tenant weight must be a number {WEIGHT_MIN:g}..{WEIGHT_MAX:g}, not {weight!r:.40}"
        )
    return float(weight)


def weight_text(weight: float) -> str:
    """A weight as stored in Redis (Lua's ``tonumber`` reads it)."""
    return f"{weight:g}"


def weight_command(tenants_key: str, tenant: object, weight: object) -> tuple[str, ...]:
    """The Redis command that sets a tenant's weight (weight 1, the default, removes it)."""
    name, value = check_tenant(tenant), check_weight(weight)
    if value == 1.0:
        return ("hdel", tenants_key, name)
    return ("hset", tenants_key, name, weight_text(value))


def parse_weights(raw: Mapping[bytes | str, bytes | str]) -> dict[str, float]:
    """The ``tenants`` hash as name -> weight."""

    def text(v: bytes | str) -> str:
        return v.decode() if isinstance(v, bytes) else v

    return {text(k): float(text(v)) for k, v in sorted(raw.items())}
