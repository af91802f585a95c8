"""The options of each backend adapter, declared once: defaults, help, how TOML and flags give them.

A ``[backends.<service>]`` table of the supervisor's TOML names its adapter and may set any of
these; ``--backend-option SERVICE.NAME=VALUE`` sets one from the command line. The adapters'
constructors take the same names as keyword arguments (a test keeps the defaults in step).
This module imports no HTTP library, so the configuration can check options without one.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from fleetq.cli.parsing import non_negative_int, seconds
from fleetq.errors import InvalidArgument
from fleetq.fields import bool_text, setting


def user_password(raw: str) -> tuple[str, str]:
    """``user:password``, as A1111's ``--api-auth`` takes it."""
    user, sep, password = raw.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("auth takes user:password")
    return (user, password)


def _secs(default: float, help: str) -> Any:
    return setting(default, help, flag=False, parse=seconds)


@dataclass(frozen=True)
class ComfyUIOptions:
    """Options of the ComfyUI adapter (:class:`supervisor.backends.comfyui.ComfyUIBackend`)."""

    request_timeout_s: float = _secs(10.0, "timeout of one API call")
    probe_timeout_s: float = _secs(2.0, "timeout of a health probe")
    view_timeout_s: float = _secs(120.0, "timeout of one output download")
    connect_timeout_s: float = _secs(5.0, "timeout of the WebSocket handshake")
    heartbeat_s: float = _secs(15.0, "WebSocket ping interval")
    poll_interval_s: float = _secs(0.25, "between history polls once the socket is lost")
    check_interval_s: float = _secs(5.0, "between safety checks while the socket is up")
    history_retries: int = setting(
        20, "re-reads of a history still empty after the done signal", flag=False,
        parse=non_negative_int,
    )  # fmt: skip
    history_retry_delay_s: float = _secs(0.05, "between those re-reads")
    terminal_grace_s: float = _secs(2.0, "wait for the end frame after an error frame")
    restart_grace_s: float = _secs(15.0, "unreachability a run rides out before it gives up")
    reconnect_min_s: float = _secs(0.2, "first WebSocket reconnect delay (doubling)")
    reconnect_max_s: float = _secs(5.0, "longest WebSocket reconnect delay")
    interrupt_timeout_s: float = _secs(3.0, "timeout of one interrupt call")
    interrupt_retry_s: float = _secs(1.0, "between repeated interrupts of a prompt that runs on")
    input_dir: str | None = setting(
        None, "the instance's input folder, if this machine reaches it: each job's uploaded "
        "inputs (input/fleetq/<job id>) are removed after the job", flag=False, parse=str,
    )  # fmt: skip

    def __post_init__(self) -> None:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise InvalidArgument(
                f"comfyui adapter: reconnect_min_s ({self.reconnect_min_s}) must not exceed "
                f"reconnect_max_s ({self.reconnect_max_s})"
            )


@dataclass(frozen=True)
class A1111Options:
    """Options of the A1111 adapter (:class:`supervisor.backends.a1111.A1111Backend`)."""

    auth: tuple[str, str] | None = setting(
        None, "user:password for A1111's --api-auth (HTTP Basic)", flag=False,
        parse=user_password, repr=False,
    )  # fmt: skip
    run_timeout_s: float | None = setting(
        None, "limit of one generation request (default: the job's timeout)", flag=False,
        parse=seconds,
    )  # fmt: skip
    request_timeout_s: float = _secs(10.0, "timeout of other calls and of connecting")
    probe_timeout_s: float = _secs(2.0, "timeout of a health probe")
    poll_interval_s: float = _secs(0.5, "between progress polls")
    restart_grace_s: float = _secs(15.0, "failed progress polls a run rides out")
    interrupt_timeout_s: float = _secs(3.0, "timeout of one interrupt call")
    interrupt_retry_s: float = _secs(1.0, "between repeated interrupts")
    keep_extras: bool = setting(
        False, "keep grids, masks and detect maps as outputs (labelled)", flag=False,
        parse=bool_text,
    )  # fmt: skip


AdapterOptions = ComfyUIOptions | A1111Options
#: Adapter name -> its options; the names ``adapter =`` accepts.
ADAPTER_OPTIONS: dict[str, type[ComfyUIOptions] | type[A1111Options]] = {
    "comfyui": ComfyUIOptions,
    "a1111": A1111Options,
}


def as_kwargs(options: AdapterOptions) -> dict[str, Any]:
    """The options as the adapter's constructor takes them."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
