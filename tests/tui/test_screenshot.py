"""The palette's Screenshot saves where it can (the working folder, or FLEETQ_SCREENSHOT_DIR)
and says where; it never depends on ~/Downloads existing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.dash_helpers import first_snapshot, wait_until
from tests.tui.test_actions import MakeApp, Notes


async def test_screenshot_saves_in_the_working_folder_and_says_where(
    make_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/Downloads here
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    monkeypatch.delenv("FLEETQ_SCREENSHOT_DIR", raising=False)
    monkeypatch.chdir(work)
    app, notes = make_app(), Notes()
    async with app.run_test(size=(120, 36), message_hook=notes) as pilot:
        await first_snapshot(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands["Screenshot"].callback()
        await wait_until(pilot, lambda: bool(list(work.glob("*.svg"))), "the screenshot file")
        saved = next(work.glob("*.svg"))
        assert "<svg" in saved.read_text()
        await wait_until(pilot, lambda: bool(notes.messages), "the notification")
        assert notes.last() == f"saved {saved.resolve()}"

        target = tmp_path / "shots" / "today"
        monkeypatch.setenv("FLEETQ_SCREENSHOT_DIR", str(target))
        commands["Screenshot"].callback()
        await wait_until(pilot, lambda: bool(list(target.glob("*.svg"))), "the configured folder")
        assert notes.last() == f"saved {next(target.glob('*.svg')).resolve()}"
