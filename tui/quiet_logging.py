"""Keep log lines off the dashboard's screen.

A logging handler that writes to the terminal (``logging.basicConfig`` in a CLI, say) holds
the real ``stderr``, which Textual's capture of ``sys.stderr`` does not reach: its lines would be
printed over the screen. While the app runs, such handlers are set aside and the records go to
Textual's log instead (``textual console``); they are put back when the app stops.
"""

from __future__ import annotations

import logging
import sys

from textual.logging import TextualHandler


def _writes_to_terminal(handler: logging.Handler) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = handler.stream
    if stream in (sys.__stderr__, sys.__stdout__, sys.stderr, sys.stdout):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed stream
        return False


class QuietTerminalLogging:
    """Set aside the root logger's terminal handlers between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self._set_aside: list[logging.Handler] = []
        self._textual: TextualHandler | None = None

    def start(self) -> None:
        root = logging.getLogger()
        self._set_aside = [h for h in root.handlers if _writes_to_terminal(h)]
        for handler in self._set_aside:
            root.removeHandler(handler)
        if self._set_aside:
            self._textual = TextualHandler()
            self._textual.setLevel(min(h.level for h in self._set_aside))
            root.addHandler(self._textual)

    def stop(self) -> None:
        root = logging.getLogger()
        if self._textual is not None:
            root.removeHandler(self._textual)
            self._textual = None
        for handler in self._set_aside:
            root.addHandler(handler)
        self._set_aside = []
