"""What a namespace may hold once finished jobs are past their retention: the fixed keys, the
per-service and per-host keys, and the keys of live (queued or running) jobs; nothing else.

Used by the protocol tests and by ``scripts/chaos.py`` (its final check). It scans the
namespace (SCAN, for tests only: fleetq itself never scans).
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from fleetq.keys import Keys

#: Keys that exist once per namespace whatever the number of jobs.
FIXED = frozenset({
    "seq", "services", "events", "paused", "drained", "leases", "reaper:lock", "reaper:last",
    "reaper:grace", "hosts", "lastreq", "tenants",
})  # fmt: skip
#: Per-service indexes (``<name>:<service>``): they may exist, but hold live jobs only.
LIVE_INDEXES = ("q", "delayed", "waiting", "running")
#: Once per service, requirement class or host; a bounded set, whatever the number of jobs
#: (``q:<svc>:<class>`` is a live index like ``q:<svc>``: its name is ``q``).
BOUNDED = ("marker", "host", "gpus", "ctl", "signal", "classes", "classver", "caps", "runtimes")
#: Per-service counters of live jobs (fair share, per-tenant counts): checked against the jobs.
COUNTERS = ("fair", "tcount")
#: Per-job keys (``<name>:<job id>``).
PER_JOB = ("job", "jobev", "out", "preview")


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def live_jobs(r: redis.Redis, keys: Keys) -> dict[str, str]:
    """Every job whose hash exists and is not terminal: id -> lease token ('' if queued)."""
    live: dict[str, str] = {}
    for key in r.scan_iter(match=keys.job("*"), count=1000):
        state, token = r.hmget(key, "state", "token")
        if _text(state) in ("queued", "running"):
            live[_text(key)[len(keys.job("")) :]] = _text(token)
    return live


def audit_keys(r: redis.Redis, keys: Keys, live: Iterable[str] | None = None) -> list[str]:
    """Violations: keys (or index members) that belong to no live job and are not fixed.

    Call it after every finished job is past its retention and a reaper pass has run. ``live``
    defaults to the jobs found queued or running.
    """
    tokens = live_jobs(r, keys)
    alive = set(tokens) if live is None else set(live)
    prefix = keys.prefix
    problems: list[str] = []
    for raw in r.scan_iter(match=prefix + "*", count=1000):
        key = _text(raw)
        rest = key[len(prefix) :]
        name, _, arg = rest.partition(":")
        if rest in FIXED or name in BOUNDED:
            if rest == "leases":
                problems += _dead_members(r, key, alive)
            continue
        if name in COUNTERS and arg:
            problems += _counter_problems(r, keys, key, name, arg)
        elif name in LIVE_INDEXES and arg:
            problems += _dead_members(r, key, alive)
        elif name == "ended":
            count = r.zcard(key)
            if count:
                problems.append(f"{key} still holds {count} finished job(s) past retention")
        elif name in PER_JOB and arg:
            if arg not in alive:
                problems.append(f"{key} belongs to no live job (ttl {r.pttl(key)} ms)")
        elif name == "idem":
            target = _text(r.get(key))
            if target not in alive:
                problems.append(f"{key} -> {target!r} is no live job (ttl {r.pttl(key)} ms)")
        elif name == "claim":
            target = _text(r.get(key))
            if target not in alive or tokens.get(target) != arg:
                problems.append(f"{key} -> {target!r} is no live lease (ttl {r.pttl(key)} ms)")
        else:
            problems.append(f"{key} is no key of the schema (ttl {r.pttl(key)} ms)")
    return problems


def _dead_members(r: redis.Redis, key: str, alive: set[str]) -> list[str]:
    dead = [_text(m) for m in r.zrange(key, 0, -1) if _text(m) not in alive]
    return [f"{key} holds {len(dead)} job(s) that are not live: {dead[:5]}"] if dead else []


def _counter_problems(r: redis.Redis, keys: Keys, key: str, name: str, service: str) -> list[str]:
    """A counter that disagrees with the live jobs of its service (fair share or tenants)."""
    want: dict[str, int] = {}
    for job_key in r.scan_iter(match=keys.job("*"), count=1000):
        svc, state, tenant, vband = (
            _text(v) for v in r.hmget(job_key, "service", "state", "tenant", "vband")
        )
        if svc != service or state not in ("queued", "running"):
            continue
        if name == "tcount" and tenant:
            want[f"{state}:{tenant}"] = want.get(f"{state}:{tenant}", 0) + 1
        if name == "fair" and vband:
            want[f"N:{vband}"] = want.get(f"N:{vband}", 0) + 1
    got = {
        _text(k): int(_text(v))
        for k, v in r.hgetall(key).items()
        if name == "tcount" or _text(k).startswith("N:")
    }
    got = {k: v for k, v in got.items() if v}
    return [] if got == want else [f"{key} counts {got}, the live jobs {want}"]
