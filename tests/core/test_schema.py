"""The Lua key builders agree with fleetq.keys; importing fleetq loads no UI or NVML."""

from __future__ import annotations

import subprocess
import sys

import redis

from fleetq.keys import Keys
from fleetq.scripts import SCRIPT_NAMES, script_source


def test_lua_key_builders_match_the_key_schema(redis_url: str) -> None:
    keys = Keys("ns-1")
    from importlib import resources

    lib = resources.files("fleetq").joinpath("lua/lib")
    common = lib.joinpath("common.lua").read_text()
    common = common.replace("--@include fair", lib.joinpath("fair.lua").read_text())
    probe = (
        common
        + """
return {k_job('J'), k_jobev('J'), k_out('J'), k_in('J'), k_queue('S'), k_delayed('S'),
        k_waiting('S'), k_running('S'), k_ended('S', 'failed'), k_marker('S'), k_idem('I'),
        k_claim('T'), k_signal('H'), k_preview('J'), K_LEASES, K_EVENTS, K_PAUSED, k_fair('S'),
        k_tcount('S'), K_TENANTS}
"""
    )
    r = redis.Redis.from_url(redis_url)
    try:
        got = [k.decode() for k in r.eval(probe, 0, keys.prefix, "100")]  # type: ignore[union-attr]
    finally:
        r.close()
    assert got == [
        keys.job("J"), keys.job_events("J"), keys.outputs("J"), keys.inputs("J"), keys.queue("S"),
        keys.delayed("S"), keys.waiting("S"), keys.running("S"), keys.ended("S", "failed"),
        keys.marker("S"), keys.idempotency("I"), keys.claim("T"), keys.signal("H"),
        keys.preview("J"), keys.leases,
        keys.events, keys.paused, keys.fair("S"), keys.tenant_counts("S"), keys.tenants,
    ]  # fmt: skip


def test_every_key_shares_the_namespace_hash_tag() -> None:
    keys = Keys("studio")
    for name in ("leases", "events", "seq", "services", "paused", "drained", "hosts", "tenants"):
        assert getattr(keys, name).startswith("{studio}:")
    assert keys.job("x").startswith("{studio}:")


def test_every_script_has_a_documented_header() -> None:
    for name in SCRIPT_NAMES:
        source = script_source(name)
        assert source.startswith(f"--[[ {name}"), name
        assert "ARGV[1]" in source and "Returns" in source, name


def test_importing_fleetq_loads_neither_textual_nor_pynvml() -> None:
    code = (
        "import sys, fleetq, fleetq.cli.main, fleetq.worker, fleetq.fleet;"
        "bad = [m for m in ('textual', 'pynvml', 'supervisor', 'tui') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
