"""Text rendering for the command line: tables, durations, the progress bar, JSON."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from fleetq.humanize import duration
from fleetq.model import JobStatus, Stats


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("json", True)  # e.g. JobStatus.preview: image bytes
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def print_json(value: Any, out: TextIO | None = None) -> None:
    out = sys.stdout if out is None else out  # bound per call: sys.stdout may be replaced
    out.write(json.dumps(to_jsonable(value), indent=2, sort_keys=False) + "\n")


def clock(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO | None = None) -> None:
    out = sys.stdout if out is None else out  # bound per call: sys.stdout may be replaced
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def where(status: JobStatus) -> str:
    if status.host is None:
        return "-"
    return f"{status.host}:{status.gpu}" if status.gpu is not None else status.host


def requirements_text(requirements: Mapping[str, Any]) -> str:
    """A one-line summary of a job's requirements (``labels``, memory, files, node count)."""
    parts = [f"{k}={v}" for k, v in sorted((requirements.get("labels") or {}).items())]
    if requirements.get("min_vram_gb") is not None:
        parts.append(f">= {requirements['min_vram_gb']} GB")
    for kind, names in sorted((requirements.get("models") or {}).items()):
        parts.append(f"{kind}: {', '.join(names[:3])}" + (" ..." if len(names) > 3 else ""))
    nodes = requirements.get("nodes") or []
    if nodes:
        parts.append(f"{len(nodes)} node class(es)")
    return "; ".join(parts)


def status_lines(status: JobStatus, now_ms: int) -> list[str]:
    lines = [
        f"job        {status.id}",
        f"service    {status.service}",
        f"state      {status.state}" + (" (cancel requested)" if status.cancel_requested else ""),
        f"priority   {status.priority}",
        f"tenant     {status.tenant}",
    ]
    if status.position is not None:
        lines.append(f"position   {status.position} (0 = next)")
    if status.eta is not None:
        e = status.eta
        lines.append(
            f"eta        starts in ~{duration(e.start_ms - e.now_ms)}, done in "
            f"~{duration(e.finish_ms - e.now_ms)} ({e.ahead:.0f} ahead on {e.gpus} GPU(s), "
            f"{duration(e.run_ms)} a run{', a guess: none on record' if e.guess else ''})"
        )
    elif status.state.value == "queued" and status.ready_ms is None:
        lines.append("eta        - (no live GPU can run it now)")
    if status.ready_ms is not None:
        lines.append(f"retry at   {clock(status.ready_ms)}")
    if status.requirements:
        lines.append(f"requires   {requirements_text(status.requirements)}")
    if status.unschedulable:
        lines.append(f"waiting    no live GPU can run it: {status.unschedulable}")
    if status.state.value == "running":
        lines.append(f"progress   {status.progress:.0%} {status.progress_text}".rstrip())
    lines += [
        f"attempts   {status.attempts}/{status.max_attempts} charged, {status.claims} claim(s)",
        f"gpu        {where(status)}",
        f"submitted  {clock(status.submitted_ms)} ({duration(now_ms - status.submitted_ms)} ago)",
    ]
    if status.started_ms is not None:
        lines.append(f"started    {clock(status.started_ms)}")
    if status.finished_ms is not None:
        lines.append(f"finished   {clock(status.finished_ms)}")
    if status.error is not None:
        lines.append(f"error      {status.error.describe()}")
    for out in status.outputs:
        lines.append(f"output     {out.filename} ({out.content_type}, {out.size} bytes)")
    return lines


def jobs_table(jobs: Sequence[JobStatus], now_ms: int, out: TextIO | None = None) -> None:
    out = sys.stdout if out is None else out  # bound per call: sys.stdout may be replaced
    rows = []
    for j in jobs:
        progress = f"{j.progress:.0%}" if j.state.value == "running" else ""
        position = "" if j.position is None else str(j.position)
        age = duration(now_ms - (j.enqueued_ms or j.submitted_ms))
        err = j.error.describe()[:60] if j.error and j.state.value == "failed" else ""
        rows.append(
            [j.id, j.service, j.state.value, j.priority, position, age, where(j),
             f"{j.attempts}/{j.max_attempts}", progress, err]
        )  # fmt: skip
    table(
        ["ID", "SERVICE", "STATE", "PRIO", "POS", "AGE", "GPU", "ATTEMPTS", "PROGRESS", "ERROR"],
        rows,
        out,
    )


def stats_table(
    stats: Stats, out: TextIO | None = None, who: Mapping[str, str] | None = None
) -> None:
    """The per-service table, the per-tenant table (tenants with queued or running jobs), then
    the paused services and drained targets, each with the operator who made the change where
    ``who`` (from ``Client.changed_by``) has one."""
    out = sys.stdout if out is None else out  # bound per call: sys.stdout may be replaced
    rows = []
    for s in stats.services:
        rows.append(
            [s.service, "paused" if s.paused else "active", s.queued, s.delayed, s.running,
             s.completed, s.failed, s.cancelled, s.completed_last_minute, s.failed_last_minute,
             duration(s.oldest_wait_ms(stats.now_ms))]
        )  # fmt: skip
    table(
        ["SERVICE", "QUEUE", "QUEUED", "(RETRY)", "RUNNING", "COMPLETED", "FAILED", "CANCELLED",
         "DONE/MIN", "FAIL/MIN", "OLDEST WAIT"],
        rows,
        out,
    )  # fmt: skip
    tenants = [
        [t.tenant, s.service, t.queued, t.running, f"{t.weight:g}"]
        for s in stats.services
        for t in s.tenants
    ]
    if tenants:
        out.write("\n")
        table(["TENANT", "SERVICE", "QUEUED", "RUNNING", "WEIGHT"], tenants, out)
    who = who or {}

    def named(kind: str, target: str) -> str:
        by = who.get(f"{kind}:{target}")
        return f"{target} (by {by})" if by else target

    paused = [named("paused", s.service) for s in stats.services if s.paused]
    if paused:
        out.write("paused: " + ", ".join(paused) + "\n")
    if stats.drained:
        out.write("drained: " + ", ".join(named("drained", t) for t in stats.drained) + "\n")


class ProgressBar:
    """A one-line progress bar on a terminal; plain lines on a pipe."""

    def __init__(self, out: TextIO = sys.stderr, width: int = 30) -> None:
        self.out = out
        self.width = width
        self.tty = out.isatty()
        self._last = ""

    def update(self, status: JobStatus) -> None:
        if status.state.value == "queued":
            pos = "retry pending" if status.position is None else f"position {status.position}"
            line = f"queued ({pos})"
        else:
            filled = round(status.progress * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            line = f"[{bar}] {status.progress:4.0%} {where(status)} {status.progress_text}"
        self._draw(line)

    def _draw(self, line: str) -> None:
        line = line.rstrip()
        if line == self._last:
            return
        self._last = line
        if self.tty:
            self.out.write("\r\x1b[2K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def finish(self, status: JobStatus) -> None:
        """The job completed: draw the full bar (the last progress report may say 57%)."""
        bar = "#" * self.width
        self._draw(f"[{bar}] 100% {where(status)} done")
        self.close()

    def close(self) -> None:
        if self.tty and self._last:
            self.out.write("\n")
            self.out.flush()
