"""What every screen of the dashboard needs to know, passed down from the app."""

from __future__ import annotations

from dataclasses import dataclass

from fleetq import Settings
from tui.operator import Operator


@dataclass(frozen=True)
class Context:
    settings: Settings
    readonly: bool
    #: None in read-only mode (and with a static source): no action can reach Redis.
    operator: Operator | None
