"""The fleetq operator dashboard: the app, its factory, and the blocking entry point."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from fleetq import AsyncClient, Settings
from tui.context import Context
from tui.operator import Operator
from tui.quiet_logging import QuietTerminalLogging
from tui.screens.base import FleetScreen
from tui.screens.detail import JobDetailScreen
from tui.screens.gpu_detail import GpuDetailScreen
from tui.screens.help import HelpScreen, described
from tui.screens.main import MainScreen
from tui.source import RedisSource, SnapshotSource
from tui.widgets.gpus import GpuTable
from tui.widgets.jobs import JobTable
from tui.widgets.queues import QueueTable

#: Where the palette's Screenshot saves (default: the working folder).
SCREENSHOT_DIR_ENV = "FLEETQ_SCREENSHOT_DIR"
#: Allocations between two passes of the collector over the youngest objects, once the app
#: runs (Python's default is 700). A refresh allocates tens of thousands of short-lived objects
#: (cells, segments, statuses) that reference counting frees; at 700 the collector ran dozens
#: of times per refresh, each pass (and every tenth, over the older objects too) costing more
#: CPU than the refresh's own drawing.
GC_YOUNG_THRESHOLD = 10_000
#: Young passes between two passes over the middle generation (Python's default is 10). What
#: survives a young pass is mostly the current snapshot, freed by reference counting at the
#: next refresh, and render-cache entries, bounded: the middle generation does not grow, and a
#: pass over it (30-50 ms at 240 GPUs) every tenth young pass, about every 25 s, found little.
GC_MIDDLE_THRESHOLD = 100


class FleetqApp(App[int]):
    """Queues, jobs and GPUs of one fleet; read by one poller, acted on through the core."""

    CSS_PATH = "app.tcss"
    TITLE = "fleetq"
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="quit"),
        Binding("question_mark", "help", "Keys", key_display="?", tooltip="this list of keys"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        ctx: Context,
        source: SnapshotSource,
        *,
        refresh_s: float = 1.0,
        clock: Callable[[], float] | None = None,
        freeze_gc: bool = False,
    ) -> None:
        super().__init__()
        self.freeze_gc = freeze_gc
        self.ctx = ctx
        self.source = source
        self.refresh_s = refresh_s
        self.clock = clock
        self._main: MainScreen | None = None
        self._quiet_logging = QuietTerminalLogging()

    def on_mount(self) -> None:
        self._quiet_logging.start()

    @property
    def main_screen(self) -> MainScreen:
        if self._main is None:
            self._main = MainScreen(self.ctx, self.source, self.refresh_s, self.clock)
        return self._main

    def get_default_screen(self) -> Screen[None]:
        return self.main_screen

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        if isinstance(screen, FleetScreen):
            for title, help_text, action in screen.palette_commands():
                yield SystemCommand(title, help_text, partial(screen.run_command, action))
        for command in super().get_system_commands(screen):
            if command.title != "Screenshot":  # Textual's saves to ~/Downloads, often missing
                yield command
        yield SystemCommand(
            "Screenshot",
            f"Save an SVG of the screen in the working folder (or ${SCREENSHOT_DIR_ENV})",
            # After the palette has closed, so it is not in the picture.
            lambda: self.set_timer(0.1, self.action_screenshot),
        )

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """Save an SVG of the screen in ``$FLEETQ_SCREENSHOT_DIR`` (created if missing) or the
        working folder, and say where (Textual's default, ~/Downloads, often does not exist)."""
        folder = Path(path or os.environ.get(SCREENSHOT_DIR_ENV) or ".").expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            saved = self.save_screenshot(filename, str(folder))
        except OSError as e:
            self.notify(f"not saved in {folder.resolve()}: {e}", title="Screenshot",
                        severity="error")  # fmt: skip
            return
        self.notify(f"saved {Path(saved).resolve()}", title="Screenshot")

    def action_help(self) -> None:
        """Every key, by where it works (from the bindings themselves)."""
        if isinstance(self.screen, HelpScreen):
            return
        sections = [
            ("Everywhere", described(self.BINDINGS)),
            ("Main screen", described(MainScreen.BINDINGS)),
            ("Jobs pane (2)", described(JobTable.BINDINGS)),
            ("Queues pane (1)", described(QueueTable.BINDINGS)),
            ("GPUs pane (3)", described(GpuTable.BINDINGS)),
            ("Job detail", described(JobDetailScreen.BINDINGS)),
            ("GPU detail (g)", described(GpuDetailScreen.BINDINGS)),
        ]
        self.push_screen(HelpScreen(sections))

    def on_poller_updated(self) -> None:
        if self.freeze_gc:
            # Everything built at start-up lives as long as the app: keep it out of the
            # collector's full passes, and run those passes a tenth as often (what survives a
            # refresh is mostly bounded render caches). Each pass otherwise stalls a refresh.
            # The young and middle passes run less often too (see GC_YOUNG_THRESHOLD).
            self.freeze_gc = False
            gc.freeze()
            first, second, _ = gc.get_threshold()
            gc.set_threshold(max(first, GC_YOUNG_THRESHOLD), max(second, GC_MIDDLE_THRESHOLD), 100)

    async def on_unmount(self) -> None:
        # The poller worker is cancelled by now; close the Redis connections it used.
        try:
            await self.source.aclose()
        finally:
            self._quiet_logging.stop()


def create_app(
    settings: Settings,
    readonly: bool = False,
    clock: Callable[[], float] | None = None,
    *,
    source: SnapshotSource | None = None,
    refresh_s: float = 1.0,
    freeze_gc: bool = False,
) -> FleetqApp:
    """Build the dashboard for ``settings`` (the CLI, the tests and the snapshots use this).

    ``clock`` (seconds since the epoch, like ``time.time``) replaces Redis server time for ages;
    ``source`` replaces Redis as the data source (a :class:`~tui.source.StaticSource` for
    snapshots), in which case no action can run. ``freeze_gc`` (what :func:`run` uses) moves
    the objects alive after the first refresh out of the garbage collector's full passes and
    makes its passes rarer (see :data:`GC_YOUNG_THRESHOLD`).
    """
    operator: Operator | None = None
    if source is None:
        client = AsyncClient(settings)
        source = RedisSource(client)
        operator = None if readonly else Operator(client)
    ctx = Context(settings=settings, readonly=readonly, operator=operator)
    return FleetqApp(ctx, source, refresh_s=refresh_s, clock=clock, freeze_gc=freeze_gc)


def run(settings: Settings, readonly: bool = False) -> int:
    """Run the dashboard in this terminal until the operator quits; returns the exit code."""
    app = create_app(settings, readonly=readonly, freeze_gc=True)
    app.run()
    return app.return_code or 0
