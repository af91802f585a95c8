"""Log lines never land on the dashboard's screen, whoever set up logging (``fleetq tui``
configures a handler on the terminal's stderr)."""

from __future__ import annotations

import io
import logging

from fleetq import Settings
from fleetq.demo.embedded import free_port
from tests.tui.dash_helpers import wait_until
from tui.app import create_app


class TerminalStream(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_redis_down_writes_no_log_line_to_the_terminal() -> None:
    terminal = TerminalStream()
    handler = logging.StreamHandler(terminal)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", namespace="nowhere")
        app = create_app(settings, refresh_s=0.1)
        async with app.run_test(size=(120, 36)) as pilot:
            banner = app.main_screen.banner
            await wait_until(pilot, lambda: banner.down, "the banner")
            assert handler not in root.handlers
            await pilot.press("q")
        assert terminal.getvalue() == ""
        assert handler in root.handlers  # put back once the dashboard is closed
        logging.getLogger("tui").warning("after the dashboard")
        assert "after the dashboard" in terminal.getvalue()
    finally:
        root.removeHandler(handler)
