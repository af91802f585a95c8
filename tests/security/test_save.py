"""Output file names come from the backend: ``JobResult.save`` must keep every file inside the
folder it was given, whatever the names (traversal, absolute paths, backslashes, NUL, very
long, unicode, empty, ``.``, ``..``), and must not overwrite anything already there."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetq.model import JobResult, Output, safe_filename

HOSTILE = [
    "../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "C:\\boot.ini", "a\x00b.png",
    "x" * 5000, "é" * 300 + ".png", "", ".", "..", "...", " ", " . ", "./", "../", "/",
    "\\", "foo/../../bar.png", "%2e%2e%2fescape.png", "\u202egnp.exe", "nul", "CON",
    "out.png\n", "-rf", "~root", "$HOME.png", "a/b/c.png", "😀.png", "\x1b[31mred.png",
    ".bashrc", "..png", "name.", "image.png" + "/" * 10,
]  # fmt: skip
NAMES = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=300),
    st.lists(
        st.sampled_from(["..", ".", "/", "\\", "a", "\x00", "é", " ", "png"]), max_size=30
    ).map("".join),
)


def check_save(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "jobs" / "out"
        sentinel = root / "jobs" / "keep.txt"
        folder.mkdir(parents=True)
        sentinel.write_bytes(b"keep")
        (folder / "existing.png").write_bytes(b"old")
        outputs = tuple(
            Output(name, "image/png", f"file {i}".encode()) for i, name in enumerate(names)
        )
        written = JobResult("0123456789abcdef", outputs).save(folder)
        assert len(written) == len(names)
        assert len(set(written)) == len(written), "every output got its own file"
        for i, path in enumerate(written):
            assert path.parent == folder, path
            assert path.resolve().parent == folder.resolve(), path
            assert path.name not in ("", ".", "..")
            assert len(os.fsencode(path.name)) <= 255
            assert "/" not in path.name and "\\" not in path.name and "\x00" not in path.name
            assert path.read_bytes() == f"file {i}".encode()
        on_disk = sorted(p.name for p in folder.iterdir())
        assert on_disk == sorted([*(p.name for p in written), "existing.png"])
        assert (folder / "existing.png").read_bytes() == b"old", "nothing overwritten"
        assert sorted(p.name for p in (root / "jobs").iterdir()) == ["keep.txt", "out"]
        assert sentinel.read_bytes() == b"keep"
        assert sorted(p.name for p in root.iterdir()) == ["jobs"]


@given(st.lists(NAMES, min_size=1, max_size=6))
@settings(max_examples=400, deadline=None)
def test_save_keeps_every_file_inside_the_folder(names: list[str]) -> None:
    check_save(names)


def test_every_listed_hostile_name_at_once() -> None:
    check_save(HOSTILE + HOSTILE)


@given(NAMES)
def test_safe_filename_is_a_plain_base_name(name: str) -> None:
    base = safe_filename(name, fallback="fallback")
    assert base and base not in (".", "..")
    assert "/" not in base and "\\" not in base and "\x00" not in base
    assert not base.startswith((".", " ")) and not base.endswith((".", " "))
    assert len(base.encode()) <= 200


def test_save_does_not_follow_a_dangling_symlink_out_of_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "img.png").symlink_to(tmp_path / "outside.txt")
    JobResult("0123456789abcdef", (Output("img.png", "image/png", b"data"),)).save(folder)
    assert not (tmp_path / "outside.txt").exists()
