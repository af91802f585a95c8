"""Every supervisor option declared once: settable from a flag, the TOML file and (where it has one)
the environment; adapters chosen per service; operator labels; adapter options reach the adapter."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fleetq import AsyncClient, Settings
from fleetq.errors import InvalidArgument
from fleetq.fields import options_of
from supervisor.backends.a1111 import A1111Backend
from supervisor.backends.comfyui import ComfyUIBackend
from supervisor.backends.options import ADAPTER_OPTIONS, A1111Options, ComfyUIOptions
from supervisor.cli import build_parser
from supervisor.config import SupervisorConfig, load_config, option_rows
from supervisor.sim.comfyui.workflows import fake_work_workflow
from supervisor.sim.group import FakeGroup

from .conftest import running_supervisor  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[2]
Start = Callable[[int], Awaitable[FakeGroup[Any]]]


def from_flags(*argv: str, env: dict[str, str] | None = None) -> SupervisorConfig:
    """What ``fleetq supervisor ARGV`` would run with."""
    args = build_parser().parse_args(["--backend", "comfyui=http://127.0.0.1:1", *argv])
    flags = {o.name: getattr(args, o.name) for o in options_of(SupervisorConfig) if o.flag}
    return load_config(Settings(), config_file=args.config,
                       backend_options=args.backend_options, env=env or {}, **flags)  # fmt: skip


def toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "supervisor.toml"
    path.write_text(text)
    return str(path)


def test_puller_and_upkeep_timings_are_settable_from_flags() -> None:
    config = from_flags("--claim-block-s", "0.5", "--reap-interval-s", "2.5",
                        "--gate-retry-s", "3", "--publish-interval-s", "4",
                        "--interrupt-grace-s", "7")  # fmt: skip
    assert (config.claim_block_s, config.reap_interval_s, config.gate_retry_s) == (0.5, 2.5, 3)
    assert (config.publish_interval_s, config.interrupt_grace_s) == (4, 7)


def test_puller_and_upkeep_timings_are_settable_from_toml(tmp_path: Path) -> None:
    path = toml(tmp_path, 'claim_block_s = 0.5\nreap_interval_s = 3\nlog_level = "debug"\n'
                '[backends]\ncomfyui = "http://127.0.0.1:{port:8188}"\n')  # fmt: skip
    config = load_config(Settings(), config_file=path, env={})
    assert config.claim_block_s == 0.5 and config.reap_interval_s == 3.0
    assert config.log_level == "DEBUG"
    assert load_config(Settings(), config_file=path, claim_block_s=2.0).claim_block_s == 2.0


def test_fleet_settings_are_settable_from_toml(tmp_path: Path) -> None:
    path = toml(tmp_path, 'services = ["sdxl", "flux"]\nlease_ms = 60000\n[backends.sdxl]\n'
                'adapter = "comfyui"\nurl = "http://127.0.0.1:{port:8188}"\n')  # fmt: skip
    config = load_config(Settings(), config_file=path)
    assert config.settings.services == ("sdxl", "flux") and config.settings.lease_ms == 60_000


def test_log_level_comes_from_the_flag_then_toml_then_the_environment(tmp_path: Path) -> None:
    env = {"FLEETQ_LOG_LEVEL": "warning"}
    assert from_flags().log_level == "INFO"
    assert from_flags(env=env).log_level == "WARNING"
    assert from_flags("--log-level", "error", env=env).log_level == "ERROR"
    path = toml(tmp_path, 'log_level = "DEBUG"\n')
    assert from_flags("--config", path, env=env).log_level == "DEBUG"
    with pytest.raises(InvalidArgument, match="FLEETQ_LOG_LEVEL: a log level is one of"):
        from_flags(env={"FLEETQ_LOG_LEVEL": "chatty"})


def test_adapter_options_from_toml_reach_the_adapter(tmp_path: Path) -> None:
    path = toml(tmp_path, '[backends.a1111]\nurl = "http://127.0.0.1:{port:7860}"\n'
                'auth = "ops:s3cret"\nkeep_extras = true\npoll_interval_s = 0.2\n'
                '[backends.comfyui]\nurl = "http://127.0.0.1:{port:8188}"\n'
                'request_timeout_s = 20\nreconnect_max_s = 2\n'
                'input_dir = "/opt/ComfyUI/input"\n')  # fmt: skip
    config = load_config(Settings(), config_file=path)
    a1111 = config.make_backend("a1111", "http://127.0.0.1:7861")
    assert isinstance(a1111, A1111Backend)
    assert a1111.keep_extras is True and a1111.poll_interval_s == 0.2
    assert a1111.url == "http://127.0.0.1:7861"
    comfy = config.make_backend("comfyui", "http://127.0.0.1:8189")
    assert isinstance(comfy, ComfyUIBackend)
    assert comfy.request_timeout_s == 20 and comfy.reconnect_max_s == 2
    assert comfy.input_dir == "/opt/ComfyUI/input"
    assert "s3cret" not in repr(config)


def test_adapter_options_from_flags_win_over_toml(tmp_path: Path) -> None:
    path = toml(tmp_path, '[backends.a1111]\nurl = "http://127.0.0.1:{port:7860}"\n'
                'keep_extras = true\n')  # fmt: skip
    args = build_parser().parse_args(["--config", path,
                                      "--backend-option", "a1111.keep_extras=false",
                                      "--backend-option", "a1111.run_timeout_s=600"])  # fmt: skip
    config = load_config(Settings(), config_file=args.config, backend_options=args.backend_options)
    options = config.backends[0].options
    assert options == A1111Options(keep_extras=False, run_timeout_s=600.0)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("a1111.keep_extras=true", "for a configured service"),
        ("comfyui.keep_extras=true", "no option 'keep_extras' for the comfyui adapter"),
        ("comfyui.request_timeout_s=soon", "not a number of seconds"),
        ("comfyui", "takes SERVICE.NAME=VALUE"),
    ],
)
def test_bad_adapter_options_are_refused_at_load(option: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        from_flags("--backend-option", option)


def test_a_service_not_named_after_its_adapter_names_it(tmp_path: Path) -> None:
    settings = Settings(services=("sdxl",))
    flagged = load_config(settings, backends=["sdxl:comfyui=http://127.0.0.1:{port:8188}"])
    assert flagged.backends[0].adapter == "comfyui"
    path = toml(tmp_path, '[backends.sdxl]\nadapter = "a1111"\nurl = "http://127.0.0.1:1"\n')
    assert load_config(settings, config_file=path).backends[0].adapter == "a1111"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[backends]\nsdxl = "http://127.0.0.1:1"\n', "backend 'sdxl': name its adapter"),
        ('[backends.sdxl]\nurl = "http://127.0.0.1:1"\n', "backend 'sdxl': name its adapter"),
        ('[backends.sdxl]\nadapter = "invokeai"\nurl = "http://127.0.0.1:1"\n',
         "unknown adapter 'invokeai' \\(adapters: comfyui, a1111\\)"),
        ('[backends.sdxl]\nadapter = "comfyui"\n', "needs url"),
        ('[backends.sdxl]\nadapter = "comfyui"\nurl = "http://x"\nkeep_extras = true\n',
         "no option 'keep_extras' for the comfyui adapter"),
        ('[backends.a1111]\nurl = "http://x"\nkeep_extras = "yes"\n', "wrong type"),
        ('[backends.a1111]\nurl = "http://x"\nauth = "nopassword"\n', "user:password"),
        ('grace = 120\n[backends]\ncomfyui = "http://x"\n', "unknown key 'grace'"),
        ('claim_block_s = 0\n[backends]\ncomfyui = "http://x"\n', "more than 0 seconds"),
        ('claim_block_s = true\n[backends]\ncomfyui = "http://x"\n', "wrong type"),
        ('[labels]\ngpu = 100\n[backends]\ncomfyui = "http://x"\n', "string values"),
        ('[backends.comfyui]\nurl = "http://x"\nreconnect_min_s = 9\n', "must not exceed"),
    ],
)  # fmt: skip
def test_bad_toml_is_refused_at_load_with_a_clear_error(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        load_config(Settings(services=("sdxl", "comfyui", "a1111")),
                    config_file=toml(tmp_path, body))  # fmt: skip


def test_missing_adapter_on_the_command_line_is_refused_at_load() -> None:
    with pytest.raises(InvalidArgument, match="name its adapter"):
        load_config(Settings(services=("sdxl",)), backends=["sdxl=http://127.0.0.1:1"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--backend", "sdxl:nope=http://127.0.0.1:1"])


def test_labels_from_flags_or_toml(tmp_path: Path) -> None:
    config = from_flags("--label", "gpu=h100", "--label", "region=eu")
    assert config.labels == {"gpu": "h100", "region": "eu"}
    path = toml(tmp_path, '[labels]\ngpu = "a100"\n[backends]\ncomfyui = "http://x"\n')
    assert load_config(Settings(), config_file=path).labels == {"gpu": "a100"}
    assert from_flags("--config", path, "--label", "gpu=l4").labels == {"gpu": "l4"}
    assert from_flags().labels == {}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--label", "gpu"])


def test_adapter_option_defaults_match_the_adapters() -> None:
    for name, adapter in [("comfyui", ComfyUIBackend), ("a1111", A1111Backend)]:
        params = inspect.signature(adapter.__init__).parameters
        options = ADAPTER_OPTIONS[name]()
        declared = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
        taken = {n: p.default for n, p in params.items() if n not in ("self", "url", "session")}
        assert declared == taken, name
    assert isinstance(ADAPTER_OPTIONS["comfyui"](), ComfyUIOptions)


def test_every_option_has_help_and_one_flag_or_key() -> None:
    for cls in (SupervisorConfig, Settings, ComfyUIOptions, A1111Options):
        for option in options_of(cls):
            assert option.help and (option.flag or option.toml or option.env), option
    flags = [o.flag for o in options_of(SupervisorConfig) if o.flag]
    assert len(flags) == len(set(flags))


def test_the_readme_table_is_the_declared_options() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration reference", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    expected = ["| " + " | ".join(row) + " |" for row in option_rows()]
    assert rows == expected, "regenerate with: python -m supervisor.config"


def test_the_sample_config_sets_every_kind_of_key() -> None:
    sample = ROOT / "scripts" / "supervisor.example.toml"
    text = sample.read_text()
    for option in options_of(SupervisorConfig):
        if option.toml:
            assert re.search(rf"^#? ?{option.toml.split('.')[-1]} =", text, re.M), option.toml
    config = load_config(Settings(), config_file=str(sample), host_id="h")
    assert config.services == ("comfyui",) and config.grace_s == 120


@pytest.mark.slow
async def test_a_service_with_its_own_name_runs_on_the_comfyui_adapter(
    settings: Settings, comfy_factory: Start, tmp_path: Path
) -> None:
    fakes = await comfy_factory(1)
    sdxl = dataclasses.replace(settings, services=("sdxl",))
    path = toml(tmp_path, f'host_id = "m-sdxl"\n[gpus]\nsimulate = 1\n[backends.sdxl]\n'
                f'adapter = "comfyui"\nurl = "http://127.0.0.1:{{port:{fakes[0].port}}}"\n'
                'poll_interval_s = 0.1\n')  # fmt: skip
    config = load_config(sdxl, config_file=path)
    async with running_supervisor(config), AsyncClient(sdxl) as client:
        job = await client.submit(fake_work_workflow(0.1, 2, seed=5), service="sdxl")
        result = await job.wait(timeout_s=20)
        assert result.outputs[0].data.startswith(b"\x89PNG")
        status = await job.status()
        assert status.host == "m-sdxl" and status.state.value == "completed"


def test_the_toml_examples_of_the_readme_and_the_module_load(tmp_path: Path) -> None:
    import supervisor.config

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    doc = (supervisor.config.__doc__ or "").split("(``--config supervisor.toml``)::", 1)[1]
    blocks.append("\n".join(line[4:] for line in doc.strip("\n").splitlines()))
    assert len(blocks) >= 3
    for block in blocks:
        config = load_config(Settings(services=("comfyui", "sdxl")),
                             config_file=toml(tmp_path, block))  # fmt: skip
        assert config.backends, block
