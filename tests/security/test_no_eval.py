"""Nothing from Redis (or anywhere) is unpickled or evaluated: JSON only.

Scans the syntax tree of every shipped Python module (so strings and comments do not count)
for deserialisers that run code (pickle and friends, marshal, unsafe YAML loaders) and for
eval/exec/compile; and the Lua scripts for Lua's own code loaders.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fleetq", "supervisor", "tui", "scripts")
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                  "jsonpickle", "joblib", "copyreg"}  # fmt: skip
BANNED_CALLS = {"eval", "exec", "compile", "__import__", "execfile"}
YAML_UNSAFE = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}
LUA_LOADERS = re.compile(r"\b(loadstring|load|dofile|loadfile|require)\s*\(")


def python_files() -> list[Path]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    assert len(files) > 50, "the scan found the sources"
    return sorted(files)


def findings(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where} import {a.name}" for a in node.names
                      if a.name.split(".")[0] in BANNED_MODULES]  # fmt: skip
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in BANNED_MODULES:
                found.append(f"{where} from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in BANNED_CALLS:
                found.append(f"{where} {func.id}()")
            elif isinstance(func, ast.Attribute):
                owner = func.value
                name = owner.id if isinstance(owner, ast.Name) else ""
                if name == "yaml" and func.attr in YAML_UNSAFE:
                    found.append(f"{where} yaml.{func.attr}()")
                if name == "builtins" and func.attr in BANNED_CALLS:
                    found.append(f"{where} builtins.{func.attr}()")
                if name in ("pickle", "marshal") or func.attr in ("loads_pickle", "unpickle"):
                    found.append(f"{where} {name}.{func.attr}()")
        elif isinstance(node, ast.keyword) and node.arg == "Loader":
            found.append(f"{where} yaml Loader=")
    return found


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_code_running_deserialiser_or_eval(path: Path) -> None:
    assert findings(path) == []


def test_the_scanner_catches_what_it_should(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text(
        "import pickle, yaml\nfrom marshal import loads\nx = eval('1')\nexec('y = 2')\n"
        "yaml.load(s)\nyaml.safe_load(s)\n# eval(in a comment)\ns = 'exec(in a string)'\n"
    )
    found = findings(sample, root=tmp_path)
    assert [f.split(" ", 1)[1] for f in found] == [
        "import pickle", "from marshal import ...", "eval()", "exec()", "yaml.load()",
    ]  # fmt: skip


def test_lua_scripts_load_no_code() -> None:
    scripts = sorted((ROOT / "fleetq" / "lua").rglob("*.lua"))
    assert len(scripts) > 10
    for script in scripts:
        code = "\n".join(line.split("--", 1)[0] for line in script.read_text().splitlines())
        assert not LUA_LOADERS.search(code), script.name


def test_redis_replies_are_decoded_as_json_only() -> None:
    """Every decode of stored data goes through json (the model, the protocol, the fleet view,
    the stores); the encoders never fall back to pickling unknown objects."""
    for name in ("model.py", "protocol.py", "fleet.py", "store.py", "client.py", "aclient.py"):
        source = (ROOT / "fleetq" / name).read_text()
        assert "pickle" not in source and "literal_eval" not in source, name
