"""Who runs an operator tool, for the audit trail that the queue keeps of operator actions
(the job timeline, the event log, who paused a service or drained a machine)."""

from __future__ import annotations

import getpass
import os
import socket

from fleetq.model import Stats

#: The longest "who" kept with an action (longer ones are cut by the protocol).
MAX_IDENTITY = 200


def operator_identity(tool: str) -> str:
    """``tool:user@host``: the tool (``cli``, ``tui``), the user running it and its machine."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = str(os.getuid())
    return f"{tool}:{user}@{socket.gethostname()}"


def marked_targets(stats: Stats) -> list[str]:
    """The pause and drain targets in force in ``stats`` (``paused:<svc>``,
    ``drained:<target>``), to ask ``Client.changed_by`` who set them."""
    marks = [f"paused:{s.service}" for s in stats.services if s.paused]
    return marks + [f"drained:{target}" for target in stats.drained]
