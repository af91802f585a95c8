"""``fleetq submit --input``: repeatable, NAME=PATH or a bare PATH that keeps its name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fleetq import Client, Settings
from supervisor.sim.png import encode_solid_png


def fleetq(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEETQ_REDIS_URL": settings.redis_url}
    return subprocess.run(
        [sys.executable, "-m", "fleetq.cli.main", "--namespace", settings.namespace, *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_submit_attaches_inputs(settings: Settings, client: Client, tmp_path: Path) -> None:
    photo, mask = encode_solid_png(4, 4, (1, 1, 1)), encode_solid_png(4, 4, (9, 9, 9))
    (tmp_path / "local-photo.png").write_bytes(photo)
    (tmp_path / "mask.png").write_bytes(mask)
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps({
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "red"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }))  # fmt: skip
    done = fleetq(settings, "submit", str(workflow),
                  "--input", f"photo.png={tmp_path / 'local-photo.png'}",
                  "--input", str(tmp_path / "mask.png"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    stored = client.store.redis.hgetall(client.store.keys.inputs(job_id))
    assert stored == {b"photo.png": photo, b"mask.png": mask}


def test_bad_inputs_are_one_line_errors(settings: Settings, client: Client, tmp_path: Path) -> None:
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps({"prompt": "x", "init_images": ["photo.png"]}))
    (tmp_path / "notes.txt").write_text("hello")
    cases = [
        ((), "init_images[0] names 'photo.png', which is not attached"),
        (("--input", f"photo.png={tmp_path / 'nope.png'}"), "cannot read input 'photo.png'"),
        (("--input", f"photo.png={tmp_path / 'notes.txt'}"), "is not an image"),
        (("--input", f"../photo.png={tmp_path / 'notes.txt'}"), "plain file name"),
    ]
    for extra, message in cases:
        done = fleetq(settings, "submit", str(workflow), "--service", "a1111", *extra)
        assert done.returncode == 1, (extra, done.stderr)
        assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert client.store.redis.keys(client.store.keys.prefix + "*") == []
