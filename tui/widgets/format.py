"""Cell formatting shared by the tables: durations, bars, sparklines, N/A.

Every cell is a Rich ``Text`` (never a markup string), so job text such as ``[x]`` is shown as is.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from fleetq.humanize import duration
from fleetq.model import JobState, JobStatus

NA = Text("N/A", style="dim")
DASH = Text("-", style="dim")
_EIGHTHS = " ▏▎▍▌▋▊▉"
_SPARK = "▁▂▃▄▅▆▇█"

STATE_STYLES = {
    JobState.QUEUED: "cyan",
    JobState.RUNNING: "bold green",
    JobState.COMPLETED: "green",
    JobState.FAILED: "bold red",
    JobState.CANCELLED: "magenta",
}
#: The state shown for a queued job that no live GPU can run, and its style.
UNRUNNABLE = "unrunnable"
WARNING = "bold yellow"
HEALTH_STYLES = {
    "healthy": "green",
    "degraded": "yellow",
    "unhealthy": "bold red",
    "lost": "bold red",
}


def age(ms: int) -> str:
    """A table age: seconds under a minute, then minutes (so it changes once a minute)."""
    ms = max(0, ms)
    if ms < 60_000:
        return f"{ms // 1000}s"
    if ms < 3_600_000:
        return f"{ms // 60_000}m"
    return duration(ms)


def load_style(pct: float | None, warn: float = 75.0, low: float = 10.0) -> str:
    """nvitop's load colours: dim when idle, green, yellow above ``warn``."""
    if pct is None:
        return "dim"
    if pct < low:
        return "dim green"
    return "yellow" if pct >= warn else "green"


def number(value: float | None, fmt: str = "{:.0f}", style: str = "") -> Text:
    return NA if value is None else Text(fmt.format(value), style=style)


def bar(fraction: float | None, width: int) -> str:
    """A horizontal bar in eighths of a cell, padded to ``width``."""
    if fraction is None:
        return " " * width
    cells = max(0.0, min(1.0, fraction)) * width
    full = int(cells)
    part = int((cells - full) * 8)
    text = "█" * full + (_EIGHTHS[part] if full < width and part else "")
    return text.ljust(width)


def progress_cell(fraction: float | None, note: str = "", width: int = 12) -> Text:
    if fraction is None:
        return Text(bar(None, width) + "  N/A", style="dim")
    cell = Text(bar(fraction, width), style="green on grey23")
    cell.append(f" {fraction * 100:3.0f}%")
    if note:
        cell.append(f" {note}", style="dim")
    return cell


def sparkline(
    samples: Sequence[float],
    width: int,
    top: float = 100.0,
    *,
    count: int | None = None,
    span: int = 60,
    dim: bool = False,
) -> Text:
    """The last ``span`` samples in ``width`` cells, always ``width`` wide.

    Each cell averages a fixed group of ``ceil(span / width)`` samples (a GPU busy one second
    in three reads as a third, not as a solid bar). Groups are counted from the first sample
    ever taken (``count``: samples taken so far, the newest last), so a finished cell never
    changes: the line moves one cell left each group instead of reshuffling every second.
    Negative samples are gaps. ``dim``: the GPU is offline, its old line is greyed.
    """
    per_cell = max(1, -(-span // width))
    total = len(samples) if count is None else count
    first = total - len(samples)  # the global index of samples[0]
    last_group = (total - 1) // per_cell if total else 0
    chars = []
    for group in range(last_group - width + 1, last_group + 1):
        lo, hi = max(group * per_cell, first), min((group + 1) * per_cell, total)
        known = [v for v in samples[lo - first : hi - first] if v >= 0] if hi > lo else []
        if not known:
            chars.append(" ")
            continue
        mean = sum(known) / len(known)
        chars.append(_SPARK[min(len(_SPARK) - 1, int(mean / top * (len(_SPARK) - 1) + 0.5))])
    # One style for the line (the latest reading's), which keeps the cell cheap to draw.
    latest = samples[-1] if samples else -1.0
    style = "dim" if dim else load_style(latest if latest >= 0 else None)
    return Text("".join(chars), style=style)


def queue_position(position: int) -> str:
    """The one way the dashboard writes a queue position: the number of jobs ahead, 0 = next
    (as the core, the CLI and the gateway count it)."""
    return "position 0 (next)" if position == 0 else f"position {position:,}"


def state_cell(job: JobStatus) -> Text:
    if job.cancel_requested and not job.is_terminal:
        return Text("cancelling", style="bold magenta")
    if job.state is JobState.QUEUED and job.ready_ms is not None:
        return Text("retry wait", style="yellow")
    if job.state is JobState.QUEUED and job.unschedulable is not None:
        return Text(UNRUNNABLE, style=WARNING)  # no live GPU can run it (JobStatus.unschedulable)
    return Text(job.state.value, style=STATE_STYLES.get(job.state, ""))


def where(host: str | None, gpu: int | None) -> Text:
    if host is None:
        return DASH
    return Text(host if gpu is None else f"{host}:{gpu}")


def megabytes(used: float | None, total: float | None) -> Text:
    if used is None:
        return NA
    if total is None:
        return Text(f"{used / 1024:.1f}G")
    return Text(f"{used / 1024:.1f}/{total / 1024:.0f}G", style=load_style(used / total * 100, 80))


def watts(power: float | None, limit: float | None) -> Text:
    if power is None:
        return NA
    return Text(f"{power:.0f}W" if limit is None else f"{power:.0f}/{limit:.0f}W")


def celsius(temp: float | None, slowdown: float | None) -> Text:
    if temp is None:
        return NA
    hot = slowdown is not None and temp >= slowdown - 5
    return Text(f"{temp:.0f}°C", style="bold red" if hot else "yellow" if temp >= 80 else "")


def short_id(job_id: str) -> str:
    return job_id[:8]
