"""The output, input and temp folders of the fake ComfyUI, with ComfyUI's naming rules.

Images are real PNG files on disk, so ``/view`` can serve them with aiohttp's ``FileResponse``
and its headers (ETag, Last-Modified, Accept-Ranges) come out as in the captures.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from supervisor.sim.comfyui.schema import FakeImage
from supervisor.sim.png import encode_solid_png, rgb_from_int

FOLDER_TYPES = ("output", "input", "temp")


def _compute_vars(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    replacements = {
        "%width%": str(width),
        "%height%": str(height),
        "%year%": str(now.tm_year),
        "%month%": str(now.tm_mon).zfill(2),
        "%day%": str(now.tm_mday).zfill(2),
        "%hour%": str(now.tm_hour).zfill(2),
        "%minute%": str(now.tm_min).zfill(2),
        "%second%": str(now.tm_sec).zfill(2),
    }
    for key, value in replacements.items():
        prefix = prefix.replace(key, value)
    return prefix


def _next_counter(folder: Path, filename: str) -> int:
    """The ``_NNNNN_`` counter continues from the files already there
    (``folder_paths.get_save_image_path``)."""
    prefix_len = len(filename)
    best = 0
    for entry in os.listdir(folder):
        prefix = entry[: prefix_len + 1]
        try:
            digits = int(entry[prefix_len + 1 :].split("_")[0])
        except ValueError:
            digits = 0
        if os.path.normcase(prefix[:-1]) == os.path.normcase(filename) and prefix[-1:] == "_":
            best = max(best, digits)
    return best + 1


class OutputFiles:
    """``output/``, ``input/`` and ``temp/`` under one base folder (a private temporary one
    when none is given)."""

    def __init__(self, base_dir: str | None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if base_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fleetq-fake-comfyui-")
            base_dir = self._tmp.name
        self.base = Path(base_dir).resolve()
        for folder_type in FOLDER_TYPES:
            (self.base / folder_type).mkdir(parents=True, exist_ok=True)

    def directory(self, folder_type: str | None) -> Path | None:
        """The folder for a ``type`` query value; None for an unknown type."""
        if folder_type not in FOLDER_TYPES:
            return None
        return self.base / folder_type

    def save_images(
        self,
        image: FakeImage,
        filename_prefix: str,
        folder_type: str,
        text: Mapping[str, str],
    ) -> list[dict[str, str]]:
        """Write one PNG per batch item as SaveImage does; return the UI ``images`` list.

        A prefix that leaves the folder raises the same plain ``Exception`` ComfyUI raises.
        """
        root = self.base / folder_type
        if "%" in filename_prefix:
            filename_prefix = _compute_vars(filename_prefix, image.width, image.height)
        normalized = os.path.normpath(filename_prefix)
        subfolder = os.path.dirname(normalized)
        filename = os.path.basename(normalized)
        full_folder = os.path.abspath(os.path.join(root, subfolder))
        common = os.path.commonpath((str(root), full_folder))
        if common != str(root):
            raise Exception(  # ComfyUI raises a bare Exception here
                "**** ERROR: Saving image outside the output folder is not allowed."
                f"\n full_output_folder: {full_folder}\n         output_dir: {root}"
                f"\n         commonpath: {common}"
            )
        os.makedirs(full_folder, exist_ok=True)
        counter = _next_counter(Path(full_folder), filename)
        data = encode_solid_png(image.width, image.height, rgb_from_int(image.color), text)
        results = []
        for batch_number in range(image.batch_size):
            name = filename.replace("%batch_num%", str(batch_number))
            file = f"{name}_{counter:05}_.png"
            Path(full_folder, file).write_bytes(data)
            results.append({"filename": file, "subfolder": subfolder, "type": folder_type})
            counter += 1
        return results

    def view_path(self, filename: str, folder_type: str, subfolder: str | None) -> Path | int:
        """Resolve a ``/view`` query to a file, or to the HTTP status ComfyUI answers."""
        folder: Path | None = None
        for annotated in FOLDER_TYPES:
            suffix = f" [{annotated}]"
            if filename.endswith(suffix):
                filename, folder = filename[: -len(suffix)], self.base / annotated
                break
        if not filename or filename[0] == "/" or ".." in filename:
            return 400
        if folder is None:
            folder = self.directory(folder_type)
            if folder is None:
                return 400
        if subfolder is not None:
            full = os.path.abspath(os.path.join(folder, subfolder))
            if os.path.commonpath((full, str(folder))) != str(folder):
                return 403
            folder = Path(full)
        path = folder / os.path.basename(filename)
        return path if path.is_file() else 404

    def upload(
        self, filename: str, data: bytes, folder_type: str | None, subfolder: str, overwrite: bool
    ) -> tuple[str, str] | None:
        """Store an upload as ``/upload/image`` does; return ``(name, type)`` or None (400).

        Without ``overwrite`` an existing file with the same bytes is reused and a different
        one gets a `` (1)`` suffix.
        """
        kind = folder_type if folder_type in ("temp", "output") else "input"
        root = self.base / kind
        folder = os.path.join(root, os.path.normpath(subfolder))
        path = os.path.abspath(os.path.join(folder, filename))
        if os.path.commonpath((str(root), path)) != str(root):
            return None
        os.makedirs(folder, exist_ok=True)
        stem, ext = os.path.splitext(filename)
        attempt = 1
        while not overwrite and os.path.exists(path):
            if Path(path).read_bytes() == data:
                return filename, kind
            filename = f"{stem} ({attempt}){ext}"
            path = os.path.join(folder, filename)
            attempt += 1
        Path(path).write_bytes(data)
        return filename, kind

    def wipe_temp(self) -> None:
        """ComfyUI empties its temp folder at start; a restart does the same."""
        temp = self.base / "temp"
        shutil.rmtree(temp, ignore_errors=True)
        temp.mkdir(parents=True, exist_ok=True)

    def cleanup(self) -> None:
        """Delete the private temporary folder, if this instance made one."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
