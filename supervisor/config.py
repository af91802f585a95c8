"""Supervisor configuration: command-line flags, an optional TOML file, and the fleet settings.

Every option is declared once, as a field of :class:`SupervisorConfig` (or of
:class:`fleetq.config.Settings`, or of an adapter's options in
:mod:`supervisor.backends.options`); the flags, the TOML keys and the README's table derive from
those declarations. Flags win over the TOML file, which wins over the environment.

Backend URLs are templates: ``{gpu}`` is the GPU index and ``{port:BASE}`` is BASE plus the
index, so one flag binds every GPU to its own instance::

    --backend comfyui=http://127.0.0.1:{port:8188}    # GPU 0 -> :8188, GPU 1 -> :8189, ...
    --backend sdxl:comfyui=http://127.0.0.1:{port:8288}   # service sdxl, ComfyUI adapter

The same in a TOML file (``--config supervisor.toml``)::

    redis = "redis://hub.example:6379/0"
    host_id = "gpu-07"
    grace_s = 120
    claim_block_s = 5

    [backends]
    comfyui = "http://127.0.0.1:{port:8188}"     # a service named after its adapter

    [backends.sdxl]                              # any other service names its adapter
    adapter = "comfyui"
    url = "http://127.0.0.1:{port:8288}"
    request_timeout_s = 20                       # adapter options

    [labels]
    gpu = "h100"

    [gpus]
    indices = [0, 1, 2, 3]      # default: every GPU NVML finds
    simulate = 0                # > 0: simulated GPUs instead of NVML (demo, tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetq.cli.parsing import index_list, non_negative_int, port, seconds
from fleetq.config import Settings
from fleetq.errors import InvalidArgument
from fleetq.fields import Option, lookup, options_of, setting
from fleetq.validation import HOST_PATTERN
from supervisor.backends.options import ADAPTER_OPTIONS, AdapterOptions, as_kwargs

if TYPE_CHECKING:
    import aiohttp

    from supervisor.backends.base import Backend

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

_PORT = re.compile(r"\{port:(\d+)\}")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class BackendSpec:
    """One service bound to a backend URL template (``{gpu}``, ``{port:BASE}`` expand), with
    its adapter (default: the service's name) and the adapter's options."""

    service: str
    url_template: str
    adapter: str = ""
    options: AdapterOptions | None = None

    def __post_init__(self) -> None:
        adapter = self.adapter or self.service
        if adapter not in ADAPTER_OPTIONS:
            if self.adapter:
                raise InvalidArgument(
                    f"backend {self.service!r}: unknown adapter {self.adapter!r} "
                    f"(adapters: {', '.join(ADAPTER_OPTIONS)})"
                )
            raise InvalidArgument(
                f'backend {self.service!r}: name its adapter, adapter = "comfyui" or '
                f'"a1111" in [backends.{self.service}] (or --backend '
                f"{self.service}:comfyui=URL)"
            )
        options = self.options if self.options is not None else ADAPTER_OPTIONS[adapter]()
        if not isinstance(options, ADAPTER_OPTIONS[adapter]):
            raise InvalidArgument(f"backend {self.service!r}: options of another adapter")
        object.__setattr__(self, "adapter", adapter)
        object.__setattr__(self, "options", options)

    def url_for(self, gpu: int) -> str:
        url = _PORT.sub(lambda m: str(int(m.group(1)) + gpu), self.url_template)
        return url.replace("{gpu}", str(gpu))

    def option_kwargs(self) -> dict[str, Any]:
        """The adapter's options as its constructor takes them."""
        assert self.options is not None  # set by __post_init__
        return as_kwargs(self.options)

    @classmethod
    def parse(cls, text: str) -> BackendSpec:
        """``SERVICE=URL`` or ``SERVICE:ADAPTER=URL``."""
        name, sep, url = text.partition("=")
        service, _, adapter = name.partition(":")
        if not sep or not service or not url.startswith(("http://", "https://")):
            raise InvalidArgument(
                f"--backend takes SERVICE=URL (e.g. comfyui=http://127.0.0.1:{{port:8188}}) "
                f"or SERVICE:ADAPTER=URL, not {text!r}"
            )
        check_url_template(url)
        return cls(service.strip(), url.strip(), adapter.strip())


def check_url_template(url: str) -> None:
    leftover = _PORT.sub("", url).replace("{gpu}", "")
    if "{" in leftover or "}" in leftover:
        raise InvalidArgument(f"backend URL {url!r}: only {{gpu}} and {{port:BASE}} expand")


def positive_seconds(raw: str) -> float:
    value = seconds(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {raw!r}")
    return value


def log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"a log level is one of {', '.join(LOG_LEVELS)}")
    return level


def label_pair(raw: str) -> tuple[str, str]:
    from supervisor.capabilities import parse_label

    return parse_label(raw)


def _secs(default: float, help: str, *, parse: Any = positive_seconds) -> Any:
    return setting(default, help, metavar="S", parse=parse)


@dataclass(frozen=True)
class SupervisorConfig:
    """Everything one supervisor needs; built by :func:`load_config`."""

    settings: Settings
    host_id: str = setting(
        help="this machine's name in the fleet", metavar="NAME", default_text="hostname"
    )
    backends: tuple[BackendSpec, ...] = setting(
        help="bind a service to a backend URL template: {gpu} is the GPU index, {port:BASE} is "
        "BASE + index; SERVICE:ADAPTER=URL for a service not named after its adapter "
        "(repeatable; TOML: [backends])",
        flag="--backend", toml=False, metavar="SERVICE=URL", parse=BackendSpec.parse,
        repeat=True, default_text="(required)",
    )  # fmt: skip
    simulate_gpus: int | None = setting(
        None, "run with N simulated GPUs instead of NVML (demo, tests)", toml="gpus.simulate",
        metavar="N", parse=non_negative_int, default_text="off",
    )  # fmt: skip
    gpu_indices: tuple[int, ...] | None = setting(
        None, "only these GPU indices, e.g. 0,1,2", flag="--gpus", toml="gpus.indices",
        metavar="LIST", parse=index_list, default_text="all",
    )  # fmt: skip
    grace_s: float = _secs(
        60.0, "on SIGTERM, time for running jobs to finish before they are requeued",
        parse=seconds,
    )  # fmt: skip
    min_free_mb: int | None = setting(
        None, "free GPU memory (MiB) a GPU needs to claim", metavar="MIB",
        parse=non_negative_int, default_text="no rule",
    )  # fmt: skip
    claim_block_s: float = _secs(
        5.0, "how long an idle puller waits for a wake-up before it claims again"
    )
    gate_retry_s: float = _secs(1.0, "how long a blocked puller waits before checking its gate")
    publish_interval_s: float = _secs(1.0, "how often the host and GPU records are published")
    reap_interval_s: float = _secs(1.0, "how often expired leases are looked for")
    capabilities_refresh_s: float = _secs(
        60.0, "how often each backend's capabilities (models, nodes) are read again"
    )
    interrupt_grace_s: float = _secs(
        10.0, "how long an interrupted backend gets to stop before its run is abandoned"
    )
    metrics_port: int | None = setting(
        None, "serve Prometheus metrics on this port", metavar="PORT", parse=port,
        default_text="off",
    )  # fmt: skip
    labels: Mapping[str, str] = setting(
        help="an operator label of this machine, e.g. gpu=h100 (repeatable; TOML: [labels])",
        flag="--label", toml=False, metavar="KEY=VALUE", parse=label_pair, repeat=True,
        default_factory=dict, default_text="none",
    )  # fmt: skip
    log_level: str = setting(
        "INFO", "log verbosity: DEBUG, INFO, WARNING or ERROR", env="FLEETQ_LOG_LEVEL",
        metavar="LEVEL", parse=log_level,
    )  # fmt: skip

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
                f"backend service {unknown[0]!r} is not registered (services: "
                f"{', '.join(self.settings.services)}; FLEETQ_SERVICES or services = [...] "
                "adds more)"
            )
        for service in self.services:
            adapters = {(b.adapter, b.options) for b in self.backends if b.service == service}
            if len(adapters) > 1:
                raise InvalidArgument(f"backend {service!r}: one adapter and options per service")

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(b.service for b in self.backends))

    def make_backend(
        self, service: str, url: str, session: aiohttp.ClientSession | None = None
    ) -> Backend:
        """The configured adapter of ``service`` (with its options) bound to ``url``."""
        from supervisor.backends.factory import make_backend

        spec = next(b for b in self.backends if b.service == service)
        return make_backend(service, url, session, adapter=spec.adapter, **spec.option_kwargs())


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


def _options_from_table(adapter: str, table: Mapping[str, Any], where: str) -> AdapterOptions:
    cls = ADAPTER_OPTIONS[adapter]
    known = {o.name: o for o in options_of(cls)}
    values = {}
    for key, value in table.items():
        if key not in known:
            raise InvalidArgument(
                f"{where}: no option {key!r} for the {adapter} adapter "
                f"(options: {', '.join(known)})"
            )
        values[key] = known[key].from_toml(value, f"{where}.{key}")
    return cls(**values)


def _backends_from_toml(table: Any, where: str) -> list[BackendSpec]:
    """``service = URL`` (or a list of URLs), or a ``[backends.<service>]`` table with
    ``url``, ``adapter`` and adapter options."""
    if not isinstance(table, Mapping):
        raise InvalidArgument(f"{where}: [backends] must map service names to URL templates")
    specs = []
    for service, value in table.items():
        if isinstance(value, Mapping):
            body = dict(value)
            urls, adapter = body.pop("url", None), body.pop("adapter", "")
            if not isinstance(adapter, str):
                raise InvalidArgument(f"{where}: backends.{service}.adapter must be a string")
            kind = adapter or service
            if urls is None:
                raise InvalidArgument(f'{where}: [backends.{service}] needs url = "http://..."')
            options = (
                _options_from_table(kind, body, f"{where}: backends.{service}")
                if kind in ADAPTER_OPTIONS
                else None
            )
        else:
            urls, adapter, options = value, "", None
        for url in [urls] if isinstance(urls, str) else list(urls):
            spec = BackendSpec.parse(
                f"{service}:{adapter}={url}" if adapter else f"{service}={url}"
            )
            specs.append(dataclasses.replace(spec, options=options))
    return specs


def _apply_backend_options(
    specs: list[BackendSpec], assignments: Sequence[str]
) -> list[BackendSpec]:
    """``SERVICE.NAME=VALUE`` flags over the adapters' options."""
    for text in assignments:
        target, sep, raw = text.partition("=")
        service, dot, name = target.partition(".")
        matching = [s for s in specs if s.service == service]
        if not sep or not dot or not matching:
            raise InvalidArgument(
                f"--backend-option takes SERVICE.NAME=VALUE for a configured service, "
                f"not {text!r:.80}"
            )
        known = {o.name: o for o in options_of(type(matching[0].options))}
        if name not in known:
            raise InvalidArgument(
                f"--backend-option {text!r:.60}: no option {name!r} for the "
                f"{matching[0].adapter} adapter (options: {', '.join(known)})"
            )
        value = known[name].from_text(raw, f"--backend-option {target}")
        specs = [_with_option(s, name, value) if s.service == service else s for s in specs]
    return specs


def _with_option(spec: BackendSpec, name: str, value: Any) -> BackendSpec:
    assert spec.options is not None  # set by BackendSpec.__post_init__
    return dataclasses.replace(spec, options=dataclasses.replace(spec.options, **{name: value}))


#: Top-level TOML keys that are neither fields nor tables of fields.
_TABLES = ("backends", "labels", "gpus")


def _settings_from_toml(base: Settings, data: Mapping[str, Any], where: str) -> Settings:
    values = {}
    for option in options_of(Settings):
        if option.toml is not None and option.toml in data:
            values[option.name] = option.from_toml(data[option.toml], f"{where}: {option.toml}")
    return base.with_overrides(**values)


def _check_keys(data: Mapping[str, Any], where: str) -> None:
    known = {o.toml.split(".")[0] for o in options_of(SupervisorConfig) if o.toml}
    known |= {o.toml for o in options_of(Settings) if o.toml} | set(_TABLES)
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidArgument(
            f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(known))})"
        )
    gpus = data.get("gpus", {})
    if not isinstance(gpus, Mapping) or set(gpus) - {"indices", "simulate"}:
        raise InvalidArgument(f"{where}: [gpus] takes indices and simulate only")


def load_config(
    base: Settings,
    *,
    config_file: str | None = None,
    redis_url: str | None = None,
    namespace: str | None = None,
    output_store: str | None = None,
    backend_options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    **flags: Any,
) -> SupervisorConfig:
    """Merge defaults, the environment, the TOML file and flags (flags win) into one checked
    configuration.

    ``flags`` are :class:`SupervisorConfig` fields by name (None: not given), as the parser of
    ``fleetq supervisor`` leaves them; ``backends`` and ``labels`` take flag text
    (``SERVICE=URL``, ``KEY=VALUE``) or parsed values.
    """
    options = {o.name: o for o in options_of(SupervisorConfig)}
    for name in flags:
        if name not in options:
            raise TypeError(f"load_config() got an unexpected option {name!r}")
    env = os.environ if env is None else env
    where = str(config_file)
    data = read_toml(config_file) if config_file else {}
    _check_keys(data, where)
    settings = _settings_from_toml(base, data, where).with_overrides(
        redis_url=redis_url, namespace=namespace, output_store=output_store
    )
    values: dict[str, Any] = {}
    for option in options.values():
        given = flags.get(option.name)
        if given is not None and given != [] and given != ():
            values[option.name] = given
        elif option.toml is not None and lookup(data, option.toml) is not None:
            values[option.name] = option.from_toml(
                lookup(data, option.toml), f"{where}: {option.toml}"
            )
        elif option.env is not None and env.get(option.env):
            values[option.name] = option.from_text(env[option.env], option.env)
    values.setdefault("host_id", default_host_id())
    values["backends"] = _apply_backend_options(
        [_backend(b) for b in values.get("backends", ())]
        or _backends_from_toml(data.get("backends", {}), where),
        backend_options,
    )
    labels = values.get("labels")
    if labels is None:
        labels = _labels_from_toml(data.get("labels", {}), where)
    values["labels"] = dict(_label(item) for item in labels)
    if values.get("simulate_gpus") == 0:
        values["simulate_gpus"] = None
    if values.get("gpu_indices") is not None:
        values["gpu_indices"] = tuple(int(i) for i in values["gpu_indices"])
    values["backends"] = tuple(values["backends"])
    return SupervisorConfig(settings=settings, **values)


def _backend(item: BackendSpec | str) -> BackendSpec:
    return item if isinstance(item, BackendSpec) else BackendSpec.parse(item)


def _label(item: tuple[str, str] | str) -> tuple[str, str]:
    return label_pair(item) if isinstance(item, str) else item


def _labels_from_toml(table: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(table, Mapping) or not all(isinstance(v, str) for v in table.values()):
        raise InvalidArgument(f"{where}: [labels] maps names to string values")
    return [label_pair(f"{key}={value}") for key, value in table.items()]


def option_rows() -> list[tuple[str, str, str, str]]:
    """The configuration reference: (setting, env, flag / TOML, default) for every option of
    the fleet settings and the supervisor, as the README's table shows them."""
    rows = []
    for option in [*options_of(Settings), *options_of(SupervisorConfig)]:
        rows.append((option.help, _code(option.env), _flag_and_key(option), option.default_text))
    return rows


def _code(text: str | None) -> str:
    return f"`{text}`" if text else ""


def _flag_and_key(option: Option) -> str:
    key = {"backends": "[backends]", "labels": "[labels]"}.get(option.name)
    toml = (
        f"[{option.toml.replace('.', '] ')}" if option.toml and "." in option.toml else option.toml
    )
    parts = [_code(option.flag), _code(key or toml)]
    return " / ".join(p for p in parts if p)


if __name__ == "__main__":  # python -m supervisor.config: the README's configuration table
    print("| setting | env | flag / TOML | default |\n|---|---|---|---|")
    for row in option_rows():
        print("| " + " | ".join(row) + " |")
