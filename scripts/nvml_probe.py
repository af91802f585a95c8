#!/usr/bin/env python3
"""Show what the supervisor's NVML layer detects and reads on this machine.

Run it on a GPU machine (from a fleetq checkout or its virtual environment)::

    python scripts/nvml_probe.py                  # JSON, then a table
    python scripts/nvml_probe.py --watch-xids 30  # also wait 30 s for XID events
    python scripts/nvml_probe.py --simulate-gpus 2  # try it without a GPU

For every GPU it prints the identity, one reading (N/A where NVML says NotSupported), whether XID
events can be watched, and the health verdict. Exit status: 0 when NVML works, 2 when it is not
available (the message says why), 1 on an unexpected error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

# Run from a checkout without installing: make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from supervisor.gpu.backend import open_gpu_backend
from supervisor.gpu.errors import NvmlUnavailableError
from supervisor.gpu.monitor import GpuMonitor

EXIT_NO_NVML = 2


async def probe(simulate_gpus: int | None, watch_xids_s: float, min_free_mb: int | None) -> Any:
    backend = open_gpu_backend(simulate_gpus)
    async with GpuMonitor(backend, event_poll_ms=500) as monitor:
        identities = await monitor.discover()
        started = time.perf_counter()
        readings = await monitor.sample()
        sample_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        if identities:
            await monitor.check(identities[0].index, min_free_mb)
        check_ms = (time.perf_counter() - started) * 1000
        if watch_xids_s > 0:
            print(f"waiting {watch_xids_s:g} s for XID events...", file=sys.stderr)
            await asyncio.sleep(watch_xids_s)
        statuses = await monitor.sample_and_judge(min_free_mb)
        support = monitor.xid_event_support()
        return {
            "simulated": monitor.simulated,
            "driver_version": backend.driver_version(),
            "gpu_count": len(identities),
            "sample_all_ms": round(sample_ms, 2),
            "check_one_ms": round(check_ms, 2),
            "gpus": [
                {
                    "identity": identity.to_json_dict(),
                    "xid_events_supported": support.get(identity.index, False),
                    "first_reading": first.to_json_dict(),
                    "reading": status.reading.to_json_dict(),
                    "health": status.verdict.to_json_dict(),
                    "recent_xids": [e.to_json_dict() for e in monitor.recent_xids(identity.index)],
                }
                for identity, first, status in zip(identities, readings, statuses, strict=True)
            ],
        }


def table(report: dict[str, Any]) -> str:
    """Fields as rows, GPUs as columns; None shows as N/A."""
    gpus = report["gpus"]
    rows: list[tuple[str, list[str]]] = [("gpu", [str(g["identity"]["index"]) for g in gpus])]
    for key in ("name", "uuid", "pci_bus_id"):
        rows.append((key, [_cell(g["identity"][key]) for g in gpus]))
    rows.append(("xid_events_supported", [_cell(g["xid_events_supported"]) for g in gpus]))
    for key in gpus[0]["reading"] if gpus else ():
        if key not in ("index", "uuid", "sampled_at_s"):
            rows.append((key, [_cell(g["reading"][key]) for g in gpus]))
    rows.append(("health", [g["health"]["status"] for g in gpus]))
    width = max(len(name) for name, _ in rows)
    col = max([12, *(len(c) for _, cells in rows for c in cells)])
    lines = [
        f"driver {report['driver_version'] or 'N/A'}"
        f"{' (simulated)' if report['simulated'] else ''}, {report['gpu_count']} GPU(s),"
        f" sample all {report['sample_all_ms']} ms, check one {report['check_one_ms']} ms",
    ]
    lines += [
        f"{name:<{width}}  " + "  ".join(f"{c:<{col}}" for c in cells) for name, cells in rows
    ]
    for g in gpus:
        for reason in g["health"]["reasons"]:
            lines.append(f"gpu {g['identity']['index']}: {reason}")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "N/A"
    if isinstance(value, list):
        return ",".join(value) or "-"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulate-gpus", type=int, metavar="N", help="probe N simulated GPUs")
    parser.add_argument("--watch-xids", type=float, default=0.0, metavar="S")
    parser.add_argument("--min-free-mb", type=int, metavar="MB", help="judge free memory too")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    args = parser.parse_args(argv)
    try:
        report = asyncio.run(probe(args.simulate_gpus, args.watch_xids, args.min_free_mb))
    except NvmlUnavailableError as e:
        print(f"nvml_probe: {e}", file=sys.stderr)
        print("nvml_probe: use --simulate-gpus N to try the probe without NVML", file=sys.stderr)
        return EXIT_NO_NVML
    print(json.dumps(report, indent=2))
    if not args.json:
        print()
        print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
