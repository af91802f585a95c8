"""``?`` lists every key, by where it works, from the bindings themselves."""

from __future__ import annotations

from tests.tui.dash_helpers import first_snapshot, wait_until
from tests.tui.test_actions import MakeApp
from tui.screens.help import HelpScreen


async def test_question_mark_lists_every_key(make_app: MakeApp) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the keys screen")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        text = help_screen.text().plain
        for section in ("Jobs pane (2)", "Queues pane (1)", "GPUs pane (3)", "Job detail"):
            assert section in text
        for line in ("k", "Kill"), ("p", "Pause/resume"), ("d", "Drain"), ("s", "State"):
            assert any(row.split()[:1] == [line[0]] and line[1] in row for row in text.splitlines())
        await pilot.press("escape")
        assert app.screen is app.main_screen
