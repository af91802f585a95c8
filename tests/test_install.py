"""What each installation brings: ``pip install fleetq`` is a client (redis and nothing of the
supervisor, the dashboard, the gateway or the demo), and a command whose extra is missing names
the extra to install. The bare installation is built once per test session, in a fresh venv."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from fleetq.cli.dispatch import EXTRAS

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
#: Libraries of the extras that a client must not get with ``pip install fleetq``.
EXTRA_LIBRARIES = (
    "textual", "orjson", "pynvml", "fakeredis", "aiohttp", "prometheus_client", "psutil",
)  # fmt: skip


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # Run outside the checkout, so that nothing is imported from the source tree by accident.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def bare_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with ``pip install .`` and no extra; its ``bin`` folder."""
    home = tmp_path_factory.mktemp("bare-install")
    venv.create(home / "venv", with_pip=True)
    bin_dir = home / "venv" / "bin"
    done = _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(ROOT)], cwd=home)
    assert done.returncode == 0, f"pip install . failed:\n{done.stdout}\n{done.stderr}"
    return bin_dir


@pytest.mark.slow
def test_a_bare_install_is_a_client_without_the_extras_libraries(bare_install: Path) -> None:
    probe = (
        "import importlib.util, sys\n"
        "import fleetq, fleetq.cli.main\n"
        "assert fleetq.Client.__name__ == 'Client' and fleetq.AsyncClient\n"
        # The fleet records read without orjson (the dashboard's extra brings it).
        "from fleetq.fleet import encode_record, parse_fleet\n"
        "view = parse_fleet([(b'h', 1.0)], [encode_record({'host': 'h'})],\n"
        "                   [encode_record([{'index': 3, 'name': 'RTX'}]).encode()])\n"
        "assert [(g.index, g.name) for g in view.hosts[0].gpus] == [(3, 'RTX')]\n"
        f"print([n for n in {EXTRA_LIBRARIES!r} if importlib.util.find_spec(n) is not None])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'supervisor', 'tui'}))\n"
    )
    done = _run([str(bare_install / "python"), "-c", probe], cwd=bare_install)
    assert done.returncode == 0, done.stderr
    installed, loaded = done.stdout.splitlines()
    assert installed == "[]"  # none of them came with ``pip install fleetq``
    assert loaded == "[]"  # importing the client loads neither the supervisor nor the dashboard


@pytest.mark.slow
def test_a_command_whose_extra_is_missing_names_the_extra(bare_install: Path) -> None:
    done = _run([str(bare_install / "fleetq"), "tui"], cwd=bare_install)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "pip install 'fleetq[tui]'" in done.stderr
    done = _run([str(bare_install / "fleetq"), "supervisor", "--simulate-gpus", "2"], bare_install)
    assert done.returncode == 1
    assert "pip install 'fleetq[supervisor]'" in done.stderr
    # The help of the whole tree still works, and lists the commands that need an extra.
    done = _run([str(bare_install / "fleetq"), "--help"], cwd=bare_install)
    assert done.returncode == 0, done.stderr
    assert "tui" in done.stdout and "supervisor" in done.stdout


def test_every_extra_a_command_names_exists_and_all_holds_them() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = pyproject["project"]["optional-dependencies"]
    named = {extra for extra, _ in EXTRAS.values()}
    assert named <= set(extras)
    everything = " ".join(extras["all"])
    assert all(extra in everything for extra in named)
    assert "fleetq[all]" in extras["dev"]
    dependencies = " ".join(pyproject["project"]["dependencies"])
    for library in ("textual", "nvidia-ml-py", "fakeredis", "aiohttp", "prometheus-client"):
        assert library not in dependencies
