"""GPUs grouped by machine: one row per machine, then one row per GPU.

A machine whose record expired shows as OFFLINE (with the GPUs last seen there), never as zeros;
a reading the GPU does not report shows as N/A.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.markup import escape

from tui.snapshot import HISTORY_LEN, GpuSnapshot, HostSnapshot, Snapshot
from tui.widgets.format import (
    DASH,
    HEALTH_STYLES,
    NA,
    age,
    celsius,
    load_style,
    megabytes,
    number,
    progress_cell,
    short_id,
    sparkline,
    watts,
)
from tui.widgets.synced_table import Row, SyncedTable

SPARK_WIDTH = 20
OFFLINE = Text("OFFLINE", style="bold white on red")


@dataclass(frozen=True, slots=True)
class DrainTarget:
    """What ``d`` acts on: a GPU (``host:index``) or a whole machine (``host``)."""

    target: str
    drained: bool
    machine: str
    machine_drained: bool


class GpuTable(SyncedTable):
    BINDINGS = [
        Binding(
            "d",
            "screen.toggle_drain",
            "Drain",
            tooltip="drain / undrain the GPU (machine row: the machine, asks first)",
        ),
        Binding(
            "D",
            "screen.drain_machine",
            "Drain host",
            tooltip="drain / undrain the whole machine (asks first)",
        ),
        Binding("g", "screen.gpu_detail", "GPU detail", tooltip="clocks, fan, PCIe, ECC..."),
        Binding(
            "c",
            "screen.clear_health",
            "Clear health",
            tooltip="ask the supervisor to forget the GPU's sticky findings",
        ),
    ]
    COLUMNS = (
        ("Machine / GPU", "gpu", 20),
        ("Util · last minute", "util", SPARK_WIDTH + 6),
        ("Memory", "memory", 10),
        ("Temp", "temp", 5),
        ("Power", "power", 9),
        ("Health", "health", 28),
        ("State", "state", 18),
        ("Job", "job", 24),
    )
    FLEX = {"gpu": 1, "health": 3, "state": 1}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.gpus: dict[str, GpuSnapshot] = {}
        self._hosts: dict[str, HostSnapshot] = {}
        self._snapshot: Snapshot | None = None

    def show(self, snapshot: Snapshot) -> None:
        rows: list[Row] = []
        hosts: dict[str, HostSnapshot] = {}
        gpus: dict[str, GpuSnapshot] = {}
        for host in snapshot.hosts:
            hosts[host.host] = host
            rows.append((host.host, host))
            for gpu in host.gpus:
                target = gpu.target
                gpus[target] = gpu
                rows.append((target, gpu))
        self._snapshot = snapshot
        self._hosts = hosts
        self.gpus = gpus
        self.sync(rows)
        self._show_note()

    def row_signature(self, item: HostSnapshot | GpuSnapshot) -> tuple[object, ...]:
        now = self._now_ms
        if isinstance(item, HostSnapshot):
            return _host_signature(item, now)
        return _gpu_signature(item, now)

    def row_cells(self, item: HostSnapshot | GpuSnapshot) -> tuple[Text, ...]:
        now = self._now_ms
        if isinstance(item, HostSnapshot):
            return _host_cells(item, now)
        return _gpu_cells(item, now)

    @property
    def _now_ms(self) -> int:
        return 0 if self._snapshot is None else self._snapshot.now_ms

    def on_data_table_row_highlighted(self) -> None:
        self._show_note()

    def note(self, key: str) -> str:
        """The line under the pane for row ``key``: a GPU's full health reason (the column may
        cut it short), who drained it or its machine, its warm model."""
        snapshot = self._snapshot
        if snapshot is None:
            return ""
        who = snapshot.changed_by
        host = self._hosts.get(key)
        if host is not None:
            return drained_note(host.host, who.get(f"drained:{host.host}")) if host.drained else ""
        gpu = self.gpus.get(key)
        return "" if gpu is None else _note(gpu, snapshot.now_ms, who.get(f"drained:{key}"))

    def _show_note(self) -> None:
        # Worked out for the row under the cursor only, not for every GPU at every refresh.
        key = self.cursor_key
        note = self.note(key) if key is not None else ""
        if note != self.border_subtitle:
            self.border_subtitle = escape(note) if note else ""

    @property
    def selected(self) -> DrainTarget | None:
        key = self.cursor_key
        if key is None:
            return None
        host = self._hosts.get(key)
        if host is not None:
            return DrainTarget(host.host, host.drained, host.host, host.drained)
        gpu = self.gpus.get(key)
        if gpu is None:
            return None
        return DrainTarget(gpu.target, gpu.drained, gpu.host, gpu.host_drained)


def _host_signature(host: HostSnapshot, now_ms: int) -> tuple[object, ...]:
    return (host, None if host.online else age(now_ms - host.last_seen_ms))


def _gpu_signature(gpu: GpuSnapshot, now_ms: int) -> tuple[object, ...]:
    return (gpu, None if gpu.fault_since_ms is None else age(now_ms - gpu.fault_since_ms))


def _host_cells(host: HostSnapshot, now_ms: int) -> tuple[Text, ...]:
    name = Text("▾ ", style="dim")
    name.append(host.host, style="bold")
    state = Text("DRAINED", style="bold magenta") if host.drained else Text("")
    if not host.online:
        seen = Text(" seen ", style="dim")
        seen.append(age(now_ms - host.last_seen_ms) + " ago", style="dim")
        health = OFFLINE + seen
        return (name, DASH, DASH, DASH, DASH, health, state, DASH)
    utils = [g.util_pct for g in host.gpus if g.util_pct is not None]
    avg = sum(utils) / len(utils) if utils else None
    used = _total([g.mem_used_mb for g in host.gpus])
    total = _total([g.mem_total_mb for g in host.gpus])
    power = _total([g.power_w for g in host.gpus])
    temps = [g.temp_c for g in host.gpus if g.temp_c is not None]
    busy = sum(1 for g in host.gpus if g.job is not None)
    unhealthy = sum(1 for g in host.gpus if g.health not in (None, "healthy"))
    health = Text(f"up · {len(host.gpus)} GPUs", style="green")
    if unhealthy:
        health.append(f" · {unhealthy} unhealthy", style="yellow")
    job = Text(f"{busy}/{len(host.gpus)} busy", style="dim")
    loads = sum(g.model_loads or 0 for g in host.gpus)
    if loads:
        job.append(f" · {loads} model loads", style="dim")
    cells = (
        name,
        number(avg, "{:>4.0f}%", load_style(avg)),
        megabytes(used, total),
        NA if not temps else celsius(max(temps), None),
        watts(power, None),
        health,
        state,
        job,
    )
    return cells


def _gpu_cells(gpu: GpuSnapshot, now_ms: int) -> tuple[Text, ...]:
    name = Text(f"  {gpu.index} ", style="bold")
    name.append(gpu.name, style="dim" if gpu.online else "dim strike")
    if not gpu.online:
        return (name, Text("   -  ", style="dim") + _spark(gpu), DASH, DASH, DASH,
                OFFLINE, _state(gpu), DASH)  # fmt: skip
    return (
        name,
        _util(gpu),
        megabytes(gpu.mem_used_mb, gpu.mem_total_mb),
        celsius(gpu.temp_c, gpu.temp_slowdown_c),
        watts(gpu.power_w, gpu.power_limit_w),
        _health(gpu, now_ms),
        _state(gpu),
        _job(gpu),
    )


def _util(gpu: GpuSnapshot) -> Text:
    cell = Text("  N/A " if gpu.util_pct is None else f"{gpu.util_pct:>4.0f}% ")
    cell.stylize(load_style(gpu.util_pct))
    return cell + _spark(gpu)


def _spark(gpu: GpuSnapshot) -> Text:
    return sparkline(
        gpu.history, SPARK_WIDTH, count=gpu.history_count, span=HISTORY_LEN, dim=not gpu.online
    )


def fault_since(gpu: GpuSnapshot, now_ms: int) -> str:
    """``5m`` (``≥5m`` when the fault was there before the dashboard started)."""
    if gpu.fault_since_ms is None:
        return ""
    return ("≥" if gpu.fault_before_start else "") + age(now_ms - gpu.fault_since_ms)


def _health(gpu: GpuSnapshot, now_ms: int) -> Text:
    if gpu.health is None:
        return NA
    cell = Text(gpu.health, style=HEALTH_STYLES.get(gpu.health, "yellow"))
    if gpu.fault_since_ms is not None:
        cell.append(f" {fault_since(gpu, now_ms)}", style="bold")
    if gpu.reasons:
        cell.append(": " + "; ".join(gpu.reasons), style="dim" if gpu.health == "healthy" else "")
    return cell


def _state(gpu: GpuSnapshot) -> Text:
    if gpu.drained:
        return Text("DRAINED", style="bold magenta")
    if gpu.host_drained:
        return Text("drained (host)", style="magenta")
    if gpu.blocked:
        return Text(f"blocked: {gpu.blocked}", style="yellow")
    if not gpu.online:
        return Text("")
    state = Text("busy", style="green") if gpu.job else Text("idle", style="dim")
    if gpu.warm_model:
        state.append(f" · {model_name(gpu.warm_model)}", style="cyan")
    return state


def model_name(file: str) -> str:
    """A checkpoint as the dashboard names it: the file name without its extension."""
    stem, dot, ext = file.rpartition(".")
    return stem if dot and ext in ("safetensors", "ckpt", "pt", "pth", "bin", "gguf") else file


def _job(gpu: GpuSnapshot) -> Text:
    if gpu.job is None:
        return DASH
    cell = Text(short_id(gpu.job.id) + " ")
    return cell + progress_cell(gpu.job.progress, width=10)


def drained_note(target: str, by: str | None) -> str:
    """The note of a drained machine: who drained it, where recorded."""
    return f"{target} drained by {by}" if by else f"{target} drained"


def _note(gpu: GpuSnapshot, now_ms: int, drained_by: str | None = None) -> str:
    parts = []
    if gpu.health not in (None, "healthy") or gpu.reasons:
        parts.append(f"{gpu.health or 'health N/A'}: {'; '.join(gpu.reasons) or 'no reason given'}")
    if gpu.fault_since_ms is not None:
        parts.append(f"since {_clock(gpu.fault_since_ms)}{' or earlier' * gpu.fault_before_start}")
    if gpu.blocked:
        parts.append(f"blocked: {gpu.blocked}")
    if gpu.drained and drained_by:
        parts.append(f"drained by {drained_by}")
    if gpu.warm_model or gpu.model_loads:
        parts.append(f"warm model: {gpu.warm_model or 'none'}, {gpu.model_loads or 0} model loads")
    return f"{gpu.target} " + " · ".join(parts) if parts else ""


def _clock(ms: int) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(ms / 1000))


def _total(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None
