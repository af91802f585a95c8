"""The GPU detail: every reading its supervisor publishes (clocks, fan, PCIe, ECC, retired
pages, throttle reasons...), N/A where the GPU does not report it; it updates live."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from tui.context import Context
from tui.screens.base import EXPLAIN_BINDINGS, FleetScreen
from tui.snapshot import GpuSnapshot, Snapshot
from tui.widgets.banner import ConnectionBanner
from tui.widgets.format import NA
from tui.widgets.poller import Poller

#: (section, [(label, reading keys, unit)]): what the view lists, in order. A row whose keys
#: are all missing or null shows N/A.
ROWS: tuple[tuple[str, tuple[tuple[str, tuple[str, ...], str], ...]], ...] = (
    ("Load", (
        ("utilization", ("utilization_gpu_pct",), "%"),
        ("memory bandwidth", ("utilization_memory_pct",), "%"),
        ("memory used / total", ("memory_used_mb", "memory_total_mb"), "MB"),
    )),
    ("Clocks and cooling", (
        ("SM clock", ("sm_clock_mhz",), "MHz"),
        ("memory clock", ("memory_clock_mhz",), "MHz"),
        ("clock event reasons", ("throttle_reasons",), ""),
        ("fan", ("fan_pct",), "%"),
        ("temperature / slowdown / shutdown",
         ("temperature_c", "temperature_slowdown_c", "temperature_shutdown_c"), "°C"),
        ("power / limit", ("power_w", "power_limit_w"), "W"),
    )),
    ("PCIe", (
        ("link generation / width", ("pcie_link_gen", "pcie_link_width"), ""),
        ("replay counter", ("pcie_replay_count",), ""),
    )),
    ("Memory errors", (
        ("ECC corrected / uncorrected (since driver load)",
         ("ecc_volatile_corrected", "ecc_volatile_uncorrected"), ""),
        ("ECC corrected / uncorrected (lifetime)",
         ("ecc_aggregate_corrected", "ecc_aggregate_uncorrected"), ""),
        ("remapped rows correctable / uncorrectable",
         ("remapped_rows_correctable", "remapped_rows_uncorrectable"), ""),
        ("row remap pending / failed", ("remap_pending", "remap_failure"), ""),
        ("retired pages SBE / DBE / pending",
         ("retired_pages_sbe", "retired_pages_dbe", "retired_pages_pending"), ""),
        ("recovery action", ("recovery_action",), ""),
    )),
)  # fmt: skip


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    return f"{value:,}" if isinstance(value, int) else str(value)


def reading_row(readings: Mapping[str, Any], keys: tuple[str, ...], unit: str) -> Text:
    values = [readings.get(k) for k in keys]
    if all(v is None for v in values):
        return NA.copy()
    text = " / ".join("N/A" if v is None else _value(v) for v in values)
    return Text(f"{text} {unit}".rstrip())


def gpu_text(gpu: GpuSnapshot | None, target: str, fault_since: str) -> Text:
    if gpu is None:
        return Text(f"{target} is no longer listed", style="yellow")
    out = Text(f"{gpu.target}  {gpu.name}", style="bold")
    if not gpu.online:
        out.append("  OFFLINE", style="bold white on red")
    out.append("\nhealth: ")
    out.append(gpu.health or "N/A", style="bold")
    if fault_since:
        out.append(f" for {fault_since}")
    for reason in gpu.reasons:
        out.append(f"\n  · {reason}")
    if gpu.warm_model or gpu.model_loads:
        out.append("\nwarm model: ")
        out.append(gpu.warm_model or "none", style="bold cyan" if gpu.warm_model else "dim")
        out.append(f"  ({gpu.model_loads or 0} model loads since its supervisor started)")
    for title, rows in ROWS:
        out.append(f"\n\n{title}", style="bold underline")
        for label, keys, unit in rows:
            out.append(f"\n  {label:<48}", style="dim")
            out.append_text(reading_row(gpu.readings, keys, unit))
    return out


class GpuDetailScreen(FleetScreen):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", tooltip="back to the main screen"),
        Binding("c", "clear_health", "Clear health", tooltip="forget the sticky findings"),
        *EXPLAIN_BINDINGS,
    ]
    COMMAND_ENTRIES = (
        ("Clear GPU health", "Ask the supervisor to forget sticky findings", "clear_health"),
    )

    def __init__(self, ctx: Context, poller: Poller, target: str) -> None:
        super().__init__(ctx, poller, id="gpu-detail")
        self.target = target
        self.gpu: GpuSnapshot | None = None
        self.body = Static(id="gpu-body")
        self.banner = ConnectionBanner(id="gpu-banner")
        self._shown: Text | None = None

    def compose(self) -> ComposeResult:
        yield self.banner
        with VerticalScroll(id="gpu-view"):
            yield self.body
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#gpu-view").border_title = f"GPU {self.target}"
        if self.poller.last is not None:
            self.show(self.poller.last)

    def show(self, snapshot: Snapshot) -> None:
        from tui.widgets.gpus import fault_since

        host, _, _ = self.target.partition(":")
        self.gpu = next(
            (
                g
                for h in snapshot.hosts
                if h.host == host
                for g in h.gpus
                if g.target == self.target
            ),
            None,
        )
        self.banner.clear_failure()
        since = "" if self.gpu is None else fault_since(self.gpu, snapshot.now_ms)
        text = gpu_text(self.gpu, self.target, since)
        if text != self._shown:
            self._shown = text
            self.body.update(text)

    def selected_gpu(self) -> GpuSnapshot | None:
        return self.gpu

    def action_back(self) -> None:
        self.dismiss(None)
