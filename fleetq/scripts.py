"""Loads the Lua scripts: one ``.lua`` file per transition under ``fleetq/lua``.

A line ``--@include NAME`` is replaced by ``lua/lib/NAME.lua`` (also inside a library), so
shared helpers are written once. Scripts are registered with redis-py, which runs them by
EVALSHA and reloads them after a NOSCRIPT error (a restarted or failed-over Redis).
"""

from __future__ import annotations

import functools
import re
from importlib import resources

SCRIPT_NAMES = (
    "submit",
    "claim",
    "renew",
    "preview",
    "complete",
    "fail",
    "ack_cancel",
    "cancel",
    "bump",
    "bump_by",
    "retry",
    "set_paused",
    "set_drained",
    "send_control",
    "reap",
    "status",
    "stats",
    "list_jobs",
    "eta",
)

_INCLUDE = re.compile(r"^--@include (\w+)\s*$", re.MULTILINE)


def _read(relative: str) -> str:
    return resources.files("fleetq").joinpath(f"lua/{relative}").read_text(encoding="utf-8")


@functools.cache
def script_source(name: str) -> str:
    """The full source of one script, with its includes inlined."""
    if name not in SCRIPT_NAMES:
        raise KeyError(f"unknown script {name!r}")
    source = _read(f"{name}.lua")
    for _ in range(4):  # a library may include another (common includes fair)
        source = _INCLUDE.sub(lambda m: _read(f"lib/{m.group(1)}.lua"), source)
    if _INCLUDE.search(source):
        raise ValueError(f"script {name!r}: includes nested too deeply")
    return source
