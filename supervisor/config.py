"""Supervisor configuration: command-line flags, an optional TOML file, and the fleet settings.

Backend URLs are templates: ``{gpu}`` is the GPU index and ``{port:BASE}`` is BASE plus the
index, so one flag binds every GPU to its own instance::

    --backend comfyui=http://127.0.0.1:{port:8188}    # GPU 0 -> :8188, GPU 1 -> :8189, ...

The same in a TOML file (``--config supervisor.toml``; flags win over the file)::

    redis = "redis://hub.example:6379/0"
    namespace = "fleetq"
    host_id = "gpu-07"
    grace_s = 120
    min_free_mb = 4096

    [backends]
    comfyui = "http://127.0.0.1:{port:8188}"

    [gpus]
    indices = [0, 1, 2, 3]      # default: every GPU NVML finds
    simulate = 0                # > 0: simulated GPUs instead of NVML (demo, tests)
"""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetq.config import Settings
from fleetq.errors import InvalidArgument
from fleetq.validation import HOST_PATTERN

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

_PORT = re.compile(r"\{port:(\d+)\}")


@dataclass(frozen=True)
class BackendSpec:
    """One ``SERVICE=URL`` binding; the URL may hold ``{gpu}`` and ``{port:BASE}``."""

    service: str
    url_template: str

    def url_for(self, gpu: int) -> str:
        url = _PORT.sub(lambda m: str(int(m.group(1)) + gpu), self.url_template)
        return url.replace("{gpu}", str(gpu))

    @classmethod
    def parse(cls, text: str) -> BackendSpec:
        service, sep, url = text.partition("=")
        if not sep or not service or not url.startswith(("http://", "https://")):
            raise InvalidArgument(
                f"--backend takes SERVICE=URL (e.g. comfyui=http://127.0.0.1:{{port:8188}}), "
                f"not {text!r}"
            )
        leftover = _PORT.sub("", url).replace("{gpu}", "")
        if "{" in leftover or "}" in leftover:
            raise InvalidArgument(f"backend URL {url!r}: only {{gpu}} and {{port:BASE}} expand")
        return cls(service.strip(), url.strip())


@dataclass(frozen=True)
class SupervisorConfig:
    """Everything one supervisor needs; built by :func:`load_config`."""

    settings: Settings
    host_id: str
    backends: tuple[BackendSpec, ...]
    simulate_gpus: int | None = None
    gpu_indices: tuple[int, ...] | None = None
    #: On SIGTERM: how long running jobs may take to finish before they are requeued.
    grace_s: float = 60.0
    #: Free GPU memory a GPU needs to claim (MiB); None skips the rule.
    min_free_mb: int | None = None
    #: How long an idle puller blocks on the wake-up marker before it claims again (a submit
    #: wakes it at once; the gate is re-checked after every wake-up).
    claim_block_s: float = 5.0
    #: How long a blocked puller waits before checking its gate again.
    gate_retry_s: float = 1.0
    publish_interval_s: float = 1.0
    reap_interval_s: float = 1.0
    #: How long an interrupted backend gets to stop before its run is abandoned.
    interrupt_grace_s: float = 10.0
    metrics_port: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not HOST_PATTERN.fullmatch(self.host_id):
            raise InvalidArgument(f"host id {self.host_id!r}: letters, digits and _.- only")
        if not self.backends:
            raise InvalidArgument(
                "no backend configured: pass --backend SERVICE=URL (e.g. "
                "comfyui=http://127.0.0.1:{port:8188}) or set [backends] in --config"
            )
        unknown = [b.service for b in self.backends if b.service not in self.settings.services]
        if unknown:
            raise InvalidArgument(
                f"backend service {unknown[0]!r} is not registered "
                f"(services: {', '.join(self.settings.services)}; FLEETQ_SERVICES adds more)"
            )

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(b.service for b in self.backends))


def default_host_id() -> str:
    name = socket.gethostname().split(".")[0] or "host"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:128]


def read_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except OSError as e:
        raise InvalidArgument(f"cannot read config {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise InvalidArgument(f"config {path} is not valid TOML: {e}") from e


def _backends_from_toml(table: Any) -> list[BackendSpec]:
    if not isinstance(table, Mapping):
        raise InvalidArgument("[backends] must map service names to URL templates")
    specs = []
    for service, urls in table.items():
        for url in [urls] if isinstance(urls, str) else list(urls):
            specs.append(BackendSpec.parse(f"{service}={url}"))
    return specs


def load_config(
    base: Settings,
    *,
    config_file: str | None = None,
    redis_url: str | None = None,
    namespace: str | None = None,
    host_id: str | None = None,
    backends: Sequence[str] = (),
    simulate_gpus: int | None = None,
    gpu_indices: Sequence[int] | None = None,
    grace_s: float | None = None,
    min_free_mb: int | None = None,
    metrics_port: int | None = None,
) -> SupervisorConfig:
    """Merge defaults, the TOML file and flags (flags win) into one checked configuration."""
    data = read_toml(config_file) if config_file else {}
    gpus = data.get("gpus", {}) if isinstance(data.get("gpus", {}), Mapping) else {}
    settings = base.with_overrides(
        redis_url=redis_url or data.get("redis"),
        namespace=namespace or data.get("namespace"),
    )
    specs = [BackendSpec.parse(b) for b in backends] or _backends_from_toml(
        data.get("backends", {})
    )
    simulate = simulate_gpus if simulate_gpus is not None else gpus.get("simulate") or None
    indices = gpu_indices if gpu_indices is not None else gpus.get("indices")
    return SupervisorConfig(
        settings=settings,
        host_id=host_id or data.get("host_id") or default_host_id(),
        backends=tuple(specs),
        simulate_gpus=int(simulate) if simulate else None,
        gpu_indices=tuple(int(i) for i in indices) if indices is not None else None,
        grace_s=float(grace_s if grace_s is not None else data.get("grace_s", 60.0)),
        min_free_mb=min_free_mb if min_free_mb is not None else data.get("min_free_mb"),
        metrics_port=metrics_port if metrics_port is not None else data.get("metrics_port"),
    )
