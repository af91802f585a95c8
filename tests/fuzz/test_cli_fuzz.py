"""Fuzz the command line: hostile arguments and files end with exit code 1 (a user error: one
line ``fleetq: error: ...``) or 2 (a usage error: one line ``fleetq COMMAND: error: ...``),
never a traceback.

Hypothesis drives ``fleetq.cli.main.main`` in-process (fast, many cases); a curated list runs
as real processes. The queue commands only: the others (supervisor, tui, gateway, demo, fakes)
would start servers, and are covered by a few fail-fast cases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fleetq.cli.main import main

COMMANDS = ["submit", "status", "jobs", "stats", "cancel", "bump", "retry", "pause", "resume",
            "drain", "undrain", "fault"]  # fmt: skip
OPTIONS = ["--service", "--priority", "--max-attempts", "--timeout", "--meta",
           "--idempotency-key", "--wait-timeout", "--out", "--state", "--limit", "--json",
           "--namespace"]  # fmt: skip
HOSTILE_TEXT = ["", "-", "--", "-1", "1e400", "nan", "inf", "-inf", "0x10", "9" * 400,
                "../../etc/passwd", "/dev/null", "é", "😀", "a" * 5000, "k=v", "=", "k=",
                "0123456789abcdef", "ffffffffffffffff", "comfyui", "a1111", "host:0", "host:x",
                ":", "--json", "%s%n", "$(reboot)", "`id`", "'", '"', "\\", " "]  # fmt: skip
# Control characters are left out: error messages echo arguments as given, so a newline in
# an argument makes a second line (reported as a note, not a crash).
ARG = st.sampled_from(HOSTILE_TEXT) | st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=40
)


def check_exit(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert code in (0, 1, 2), (code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    if code == 1:
        # One error line; with --wait, the progress lines that came before it.
        progress = [line for line in lines[:-1] if line.startswith(("queued", "["))]
        assert len(lines) == 1 + len(progress) and lines[-1].startswith("fleetq"), err
        assert "error:" in lines[-1] or "interrupted" in lines[-1], err
    elif code == 2:
        assert lines and "error:" in lines[-1], err


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: usage errors exit 2, --help exits 0
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def mostly(plausible: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Plausible four times in five, so that the commands get past argparse."""
    return st.integers(0, 4).flatmap(lambda n: ARG if n == 0 else plausible)


JOB_ID = st.from_regex(r"[0-9a-f]{16}", fullmatch=True)
INT = st.integers().map(str)
FLOAT = st.floats().map(str) | INT
POSITIONAL = {
    "submit": [mostly(st.sampled_from(["/dev/null", "/etc/hostname", "/", "missing.json"]))],
    "status": [mostly(JOB_ID)],
    "cancel": [mostly(JOB_ID)],
    "retry": [mostly(JOB_ID)],
    "bump": [mostly(JOB_ID), mostly(INT)],
    "pause": [mostly(st.sampled_from(["comfyui", "a1111"]))],
    "resume": [mostly(st.sampled_from(["comfyui", "a1111"]))],
    "drain": [mostly(st.from_regex(r"[a-z0-9]{1,8}(:[0-9]{1,3})?", fullmatch=True))],
    "undrain": [mostly(st.from_regex(r"[a-z0-9]{1,8}(:[0-9]{1,3})?", fullmatch=True))],
    "fault": [mostly(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)), mostly(INT), ARG],
    "jobs": [],
    "stats": [],
}
VALUED = {
    "--service": mostly(st.sampled_from(["comfyui", "a1111"])),
    "--priority": mostly(INT),
    "--max-attempts": mostly(INT),
    "--timeout": mostly(FLOAT),
    "--meta": mostly(st.tuples(ARG, ARG).map("=".join)),
    "--idempotency-key": ARG,
    "--state": mostly(st.sampled_from(["queued", "running", "completed", "failed", "cancelled"])),
    "--limit": mostly(INT),
}


@st.composite
def invocations(draw: st.DrawFn) -> list[str]:
    """A queue command with its positional arguments and a few options, each value hostile."""
    command = draw(st.sampled_from(COMMANDS))
    argv = [command, *(draw(strategy) for strategy in POSITIONAL[command])]
    allowed = {"submit": [o for o in VALUED if o not in ("--state", "--limit")],
               "jobs": ["--state", "--service", "--limit"]}.get(command, [])  # fmt: skip
    for option in draw(st.lists(st.sampled_from([*allowed, "--json"]), max_size=3)):
        argv += [option] if option == "--json" else [option, draw(VALUED[option])]
    if draw(st.integers(0, 9)) == 0:  # now and then, something out of place
        argv.insert(draw(st.integers(0, len(argv))), draw(ARG | st.sampled_from(OPTIONS)))
    return argv


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=invocations())
def test_hostile_arguments(
    redis_url: str, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    namespace = "cf-" + uuid.uuid4().hex[:8]
    code, err = run_main(["--redis", redis_url, "--namespace", namespace, *argv], capsys)
    event(f"exit {code}")
    check_exit(code, err)


def write(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


HOSTILE_FILES: dict[str, bytes] = {
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "invalid-utf8": b'{"1": "\xff\xfe"}',
    "utf16": json.dumps({"prompt": "x"}).encode("utf-16"),
    "bom": b"\xef\xbb\xbf" + json.dumps({"prompt": "x"}).encode(),
    "nan": b'{"prompt": NaN}',
    "list": b"[1, 2, 3]",
    "string": b'"a string"',
    "truncated": b'{"1": {"class_type": "X", "inputs": {',
    "ui-format": json.dumps({"nodes": [], "links": []}).encode(),
    "nul": b'{"1": {"class_type": "X\x00", "inputs": {}}}',
    "huge-number": b'{"1": {"class_type": "X", "inputs": {"a": 1' + b"0" * 5000 + b"}}}",
    "too-large": json.dumps({"prompt": "x" * (9 * 1024 * 1024)}).encode(),
    "duplicate-keys": b'{"1": {"class_type": "X", "inputs": {}}, "1": 5}',
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
def test_hostile_workflow_files(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    path = write(tmp_path, f"{case}.json", HOSTILE_FILES[case])
    for service in ("comfyui", "a1111"):
        argv = ["--redis", redis_url, "--namespace", "cf-" + uuid.uuid4().hex[:8], "submit",
                path, "--service", service]  # fmt: skip
        code, err = run_main(argv, capsys)
        check_exit(code, err)
        # A1111 ignores fields it does not know, so some of these are valid A1111 bodies.
        assert code == 1 or (service == "a1111" and code == 0), (case, service, err)


def test_unreadable_paths(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = write(tmp_path, "locked.json", b"{}")
    os.chmod(locked, 0)
    for path in (str(tmp_path), str(tmp_path / "missing.json"), locked, "/proc/self/mem"):
        code, err = run_main(["--redis", redis_url, "submit", path], capsys)
        check_exit(code, err)
        assert code == 1


def fleetq(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, str]:
    environment = {**os.environ, **(env or {})}
    environment.pop("FLEETQ_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "fleetq.cli.main", *args], input=stdin,
                          capture_output=True, timeout=60, env=environment)  # fmt: skip
    return done.returncode, done.stderr.decode(errors="replace")


PROCESS_CASES: list[tuple[list[str], bytes, dict[str, str]]] = [
    (["submit", "-"], b"\xff" * 100, {}),
    (["submit", "-"], b"{" * 50, {}),
    (["submit", "-", "--priority", "1e400"], b"{}", {}),
    (["submit", "-", "--timeout", "nan"], b'{"prompt": "x"}', {}),
    (["submit", "-", "--meta", "novalue"], b'{"prompt": "x"}', {}),
    (["status", "x" * 100_000], b"", {}),
    (["jobs", "--limit", "-5"], b"", {}),
    (["jobs", "--limit", "99999999999999999999"], b"", {}),
    (["bump", "0123456789abcdef", "--", "-99999999999"], b"", {}),
    (["drain", "h" * 1000], b"", {}),
    (["fault", "host", "x", "xid=" + "9" * 50], b"", {}),
    (["stats"], b"", {"FLEETQ_LEASE_MS": "soon"}),
    (["stats"], b"", {"FLEETQ_NAMESPACE": "bad namespace!"}),
    (["stats"], b"", {"FLEETQ_SERVICES": "UPPER,bad space"}),
    (["stats"], b"", {"FLEETQ_REDIS_URL": "http://nope"}),
    (["--redis", "redis://127.0.0.1:1/0?foo=bar", "stats"], b"", {}),
    (["--redis", "redis+sentinel://127.0.0.1:1/", "stats"], b"", {}),
    (["supervisor", "--gpus", "a,b"], b"", {}),
    (["supervisor", "--config", "/nonexistent/supervisor.toml"], b"", {}),
    (["supervisor", "--backend", "nonsense"], b"", {}),
    (["supervisor", "--simulate-gpus", "many"], b"", {}),
    (["nosuchcommand"], b"", {}),
]


@pytest.mark.parametrize(
    ("args", "stdin", "env"), PROCESS_CASES, ids=[" ".join(c[0])[:40] for c in PROCESS_CASES]
)
def test_hostile_invocations_as_processes(
    redis_url: str, args: list[str], stdin: bytes, env: dict[str, str]
) -> None:
    head = [] if args[0] == "--redis" or "FLEETQ_REDIS_URL" in env else ["--redis", redis_url]
    if "FLEETQ_NAMESPACE" not in env:
        head += ["--namespace", "cf-proc"]
    code, err = fleetq(*head, *args, stdin=stdin, env=env)
    check_exit(code, err)
    assert code in (1, 2), err


KNOWN: dict[str, tuple[list[str], bytes]] = {
    "deeply-nested-file": (["submit", "-"], b"[" * 100_000 + b"]" * 100_000),
    "wait-timeout": (
        ["submit", "-", "--service", "a1111", "--wait", "--wait-timeout", "0.1"],
        b'{"prompt": "nobody runs this"}',
    ),
}


@pytest.mark.parametrize("case", list(KNOWN))
def test_known_cli_failures(redis_url: str, case: str) -> None:
    args, stdin = KNOWN[case]
    code, err = fleetq("--redis", redis_url, *args, stdin=stdin)
    check_exit(code, err)
