"""Short human renderings shared by the command line and the dashboard."""

from __future__ import annotations


def duration(ms: int | None) -> str:
    """A short human duration: 850ms, 12s, 4m05s, 3h12m, 2d04h; ``-`` for None."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{max(0, ms)}ms"
    s = ms // 1000
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"
