"""Supervisor configuration: backend URL templates, TOML, flags over file, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetq import Settings
from fleetq.errors import InvalidArgument
from supervisor.config import BackendSpec, load_config


def test_url_templates_expand_per_gpu() -> None:
    spec = BackendSpec.parse("comfyui=http://127.0.0.1:{port:8188}/gpu{gpu}")
    assert [spec.url_for(i) for i in range(3)] == [
        "http://127.0.0.1:8188/gpu0", "http://127.0.0.1:8189/gpu1", "http://127.0.0.1:8190/gpu2",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "text", ["comfyui", "comfyui=ftp://x", "=http://x", "comfyui=http://x:{port}", "a=http://{y}"]
)
def test_bad_backend_flags(text: str) -> None:
    with pytest.raises(InvalidArgument):
        BackendSpec.parse(text)


def test_toml_with_flags_winning(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'redis = "redis://hub:6379/1"\nnamespace = "studio"\nhost_id = "gpu-07"\ngrace_s = 30\n'
        '[backends]\ncomfyui = "http://127.0.0.1:{port:8188}"\n'
        'a1111 = ["http://127.0.0.1:{port:7860}"]\n[gpus]\nindices = [0, 2]\nsimulate = 4\n'
    )
    config = load_config(Settings(), config_file=str(path), host_id="override")
    assert config.settings.redis_url == "redis://hub:6379/1"
    assert config.settings.namespace == "studio"
    assert config.host_id == "override"
    assert config.grace_s == 30
    assert config.services == ("comfyui", "a1111")
    assert config.gpu_indices == (0, 2) and config.simulate_gpus == 4
    flagged = load_config(
        Settings(), config_file=str(path), backends=["a1111=http://h:{port:9000}"]
    )
    assert flagged.services == ("a1111",)


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="no backend configured"):
        load_config(Settings())
    with pytest.raises(InvalidArgument, match="not registered"):
        load_config(Settings(), backends=["sdxl:comfyui=http://127.0.0.1:1"])
    with pytest.raises(InvalidArgument, match="host id"):
        load_config(Settings(), backends=["comfyui=http://x"], host_id="bad host")
    bad = tmp_path / "bad.toml"
    bad.write_text("redis = ")
    with pytest.raises(InvalidArgument, match="not valid TOML"):
        load_config(Settings(), config_file=str(bad))
    with pytest.raises(InvalidArgument, match="cannot read config"):
        load_config(Settings(), config_file=str(tmp_path / "missing.toml"))


def test_sample_config_in_scripts_loads() -> None:
    sample = Path(__file__).resolve().parents[2] / "scripts" / "supervisor.example.toml"
    config = load_config(Settings(), config_file=str(sample), host_id="h")
    assert config.services == ("comfyui",) and config.grace_s == 120


def test_supervisor_without_nvml_refuses_to_start_with_a_clear_message() -> None:
    import subprocess
    import sys

    from supervisor.gpu.errors import NvmlUnavailableError
    from supervisor.gpu.nvml import NvmlBackend

    try:
        NvmlBackend.open().close()
    except NvmlUnavailableError:
        pass
    else:
        pytest.skip("this machine has NVML; the supervisor would start")
    done = subprocess.run(
        [sys.executable, "-m", "fleetq.cli.main", "supervisor",
         "--backend", "comfyui=http://127.0.0.1:{port:8188}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "refusing to start" in done.stderr and "--simulate-gpus N" in done.stderr
    assert "Traceback" not in done.stderr
