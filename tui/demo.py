"""A fixed, realistic fleet for the SVG snapshots and the docs screenshot (no Redis needed).

``python -m tui.demo docs/dashboard.svg`` writes the screenshot of the main screen.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import Callable
from typing import Any

from fleetq import JobError, JobState, JobStatus, Settings, Stats
from fleetq.fleet import FleetView, HostView
from fleetq.model import Attempt, FaultKind, OutputFile, ServiceStats, TenantStats
from fleetq.records import GpuHealth, GpuJobRecord, GpuRecord, HostRecord
from tui.app import FleetqApp, create_app
from tui.source import StaticSource

#: The demo's "now": 2026-11-27 21:30:00 UTC.
NOW_MS = 1_795_815_000_000
S = 1000
M = 60 * S

COMFY_GRAPH = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 30, "model": ["10", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple",
          "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dawn"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry"}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "fleetq"}},
    "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "film_grain_v2.safetensors"}},
    "11": {"class_type": "VAELoader", "inputs": {"vae_name": "sdxl_vae.safetensors"}},
}  # fmt: skip
A1111_BODY = {
    "prompt": "a red fox in snow",
    "steps": 25,
    "override_settings": {"sd_model_checkpoint": "realisticVision_v51"},
}


def job(
    n: int,
    state: JobState,
    *,
    service: str = "comfyui",
    priority: int = 0,
    age_ms: int = 60 * S,
    where: tuple[str, int] | None = None,
    progress: float = 0.0,
    text: str = "",
    **extra: Any,
) -> JobStatus:
    """One demo job with a fixed id derived from ``n``."""
    submitted = NOW_MS - age_ms
    fields: dict[str, Any] = {
        "id": hashlib.sha256(f"demo-{n}".encode()).hexdigest()[:16],
        "service": service,
        "state": state,
        "priority": priority,
        "position": None,
        "progress": progress,
        "progress_text": text,
        "attempts": 0,
        "max_attempts": 3,
        "claims": 0,
        "lost_leases": 0,
        "host": None,
        "gpu": None,
        "error": None,
        "submitted_ms": submitted,
        "enqueued_ms": submitted,
        "started_ms": None,
        "finished_ms": None,
        "ready_ms": None,
        "timeout_ms": 900 * S,
        "cancel_requested": False,
        "metadata": {},
        "outputs": (),
        "timeline": (),
    }
    if where is not None:
        started = NOW_MS - age_ms // 2
        fields.update(
            host=where[0],
            gpu=where[1],
            claims=1,
            started_ms=started,
            timeline=(Attempt(1, where[0], where[1], started, None, None, None),),
        )
    fields.update(extra)
    return JobStatus(**fields)


def _gpu(
    index: int, name: str, util: int | None, mem: int | None, total: int, temp: int | None,
    power: float | None, limit: float | None, job: JobStatus | None = None,
    health: GpuHealth = GpuHealth.HEALTHY, reasons: tuple[str, ...] = (),
    blocked: str | None = None,
) -> GpuRecord:  # fmt: skip
    return GpuRecord(
        index=index,
        name=name,
        uuid=f"GPU-{index:04d}",
        health=health,
        reasons=reasons,
        blocked=blocked,
        services=("comfyui", "a1111"),
        job=None if job is None else _gpu_job(job),
        readings={
            "utilization_gpu_pct": util,
            "memory_used_mb": mem,
            "memory_total_mb": total,
            "temperature_c": temp,
            "temperature_slowdown_c": 90,
            "power_w": power,
            "power_limit_w": limit,
        },
    )


def _gpu_job(job: JobStatus) -> GpuJobRecord:
    return GpuJobRecord(job.id, job.service, job.progress, job.progress_text, job.started_ms)


def demo_source() -> StaticSource:
    """The demo fleet: 3 machines online (10 GPUs), 1 offline, 2 services, 24 jobs."""
    running = [
        job(1, JobState.RUNNING, priority=5, age_ms=4 * M, where=("gpu-node-01", 0),
            progress=0.82, text="KSampler 25/30"),
        job(2, JobState.RUNNING, age_ms=3 * M, where=("gpu-node-01", 1), progress=0.40,
            text="KSampler 12/30"),
        job(3, JobState.RUNNING, age_ms=150 * S, where=("gpu-node-01", 2), progress=0.10,
            text="VAEDecode"),
        job(4, JobState.RUNNING, service="a1111", age_ms=90 * S, where=("gpu-node-02", 0),
            progress=0.55, text="step 14/25"),
        job(5, JobState.RUNNING, age_ms=70 * S, where=("gpu-node-03", 1), progress=0.05,
            cancel_requested=True),
        job(6, JobState.RUNNING, priority=-5, age_ms=60 * S, where=("gpu-node-02", 3),
            progress=0.67, text="KSampler 20/30"),
    ]  # fmt: skip
    queued = [
        job(10 + i, JobState.QUEUED, priority=p, age_ms=a, service=s, position=pos)
        for i, (p, a, s, pos) in enumerate(
            [(10, 20 * S, "comfyui", 0), (5, 4 * M + 12 * S, "comfyui", 1),
             (0, 3 * M, "comfyui", 2), (0, 2 * M + 30 * S, "comfyui", 3),
             (0, 2 * M, "a1111", 0), (0, 95 * S, "comfyui", 4), (0, 40 * S, "comfyui", 5),
             (-10, 9 * M, "comfyui", 6)]
        )
    ]  # fmt: skip
    retry_wait = job(
        30, JobState.QUEUED, age_ms=5 * M, attempts=1, claims=1, ready_ms=NOW_MS + 20 * S,
        error=JobError("RuntimeError", "CUDA out of memory", node="3", kind=FaultKind.JOB),
    )  # fmt: skip
    failed = job(
        40, JobState.FAILED, age_ms=20 * M, attempts=3, claims=4, lost_leases=1,
        finished_ms=NOW_MS - 2 * M, host="gpu-node-02", gpu=1,
        error=JobError("ValueError", "ckpt_name 'sd_xl_refiner.safetensors' not in list",
                       node="4", kind=FaultKind.FINAL),
        timeline=(
            Attempt(1, "gpu-node-02", 1, NOW_MS - 19 * M, NOW_MS - 17 * M, "requeued",
                    "backend lost (ComfyUI restarted)"),
            Attempt(2, "gpu-node-01", 3, NOW_MS - 16 * M, NOW_MS - 15 * M, "lost",
                    "lease expired on gpu-node-01:3"),
            Attempt(3, "gpu-node-03", 0, NOW_MS - 14 * M, NOW_MS - 10 * M, "retrying",
                    "RuntimeError: CUDA out of memory"),
            Attempt(4, "gpu-node-02", 1, NOW_MS - 4 * M, NOW_MS - 2 * M, "failed",
                    "ValueError: ckpt_name not in list"),
        ),
    )  # fmt: skip
    completed = job(
        50, JobState.COMPLETED, age_ms=12 * M, finished_ms=NOW_MS - 9 * M, claims=1,
        host="gpu-node-01", gpu=0, metadata={"client": "studio-b", "batch": 7},
        outputs=(OutputFile("fleetq_00001_.png", "image/png", 1_482_113),
                 OutputFile("fleetq_00002_.png", "image/png", 1_501_877)),
        timeline=(Attempt(1, "gpu-node-01", 0, NOW_MS - 11 * M, NOW_MS - 9 * M, "completed", ""),),
    )  # fmt: skip
    cancelled = job(60, JobState.CANCELLED, age_ms=30 * M, finished_ms=NOW_MS - 25 * M)
    jobs = [*running, *queued, retry_wait, failed, completed, cancelled]

    r = {f"{i + 1:02d}": j for i, j in enumerate(running)}
    ada, a100, l40 = "RTX 4090", "A100-SXM4-80GB", "L40S"
    hosts = (
        HostView("gpu-node-01", True, NOW_MS - S, HostRecord(version="fleetq 0.1.0"), (
            _gpu(0, ada, 97, 21_800, 24_564, 74, 402.3, 450, r["01"]),
            _gpu(1, ada, 88, 18_211, 24_564, 71, 377.0, 450, r["02"]),
            _gpu(2, ada, 64, 12_020, 24_564, 66, 301.9, 450, r["03"]),
            _gpu(3, ada, 0, 610, 24_564, 38, 31.2, 450),
        )),
        HostView("gpu-node-02", True, NOW_MS - S, HostRecord(version="fleetq 0.1.0"), (
            _gpu(0, a100, 91, 61_440, 81_920, 63, 331.0, 400, r["04"]),
            _gpu(1, a100, None, None, 81_920, None, None, None, health=GpuHealth.LOST,
                 reasons=("XID 79: GPU has fallen off the bus",), blocked="GPU lost"),
            _gpu(2, a100, 3, 1_024, 81_920, 86, 88.0, 400, health=GpuHealth.DEGRADED,
                 reasons=("temperature 86°C near slowdown 90°C",), blocked="too hot"),
            _gpu(3, a100, 79, 40_960, 81_920, 58, 290.5, 400, r["06"]),
        )),
        HostView("gpu-node-03", True, NOW_MS - 2 * S, HostRecord(version="fleetq 0.1.0"), (
            _gpu(0, l40, 0, 480, 46_068, 35, None, None, blocked="backend down: ComfyUI"),
            _gpu(1, l40, 45, 9_800, 46_068, 52, None, None, r["05"]),
        )),
        HostView("gpu-node-04", False, NOW_MS - 3 * M - 7 * S, HostRecord(), ()),
    )  # fmt: skip
    services = (
        ServiceStats("comfyui", queued=1_284, delayed=1, running=5, completed=18_912,
                     failed=41, cancelled=7, completed_last_minute=37, failed_last_minute=1,
                     oldest_enqueued_ms=NOW_MS - 9 * M, paused=False,
                     tenants=(TenantStats("studio-a", 1_204, 3, 2.0),
                              TenantStats("studio-b", 80, 2))),
        ServiceStats("a1111", queued=52, delayed=0, running=1, completed=2_310, failed=3,
                     cancelled=0, completed_last_minute=4, failed_last_minute=0,
                     oldest_enqueued_ms=NOW_MS - 2 * M, paused=True,
                     tenants=(TenantStats("default", 52, 1),)),
    )  # fmt: skip
    stats = Stats(NOW_MS, services, ("gpu-node-01:3",))
    workflows = {j.id: json.dumps(COMFY_GRAPH) for j in jobs if j.service == "comfyui"}
    workflows.update({j.id: json.dumps(A1111_BODY) for j in jobs if j.service == "a1111"})
    return StaticSource(stats, jobs, FleetView(hosts), workflows)


def demo_history(samples: int = 60) -> Callable[[int, int], float]:
    """A deterministic utilization curve per GPU, for pre-filling sparklines."""

    def util(gpu: int, t: int) -> float:
        return float((37 * gpu + 11 * t + (t * t) % 23) % 100)

    return util


def demo_app(readonly: bool = False, refresh_s: float = 3600.0) -> FleetqApp:
    """The dashboard on the demo fleet, with a fixed clock; it reads once, then sits still."""
    settings = Settings(redis_url="redis://fleet-redis:6379/0", namespace="studio")
    app = create_app(
        settings, readonly, clock=lambda: NOW_MS / 1000, source=demo_source(), refresh_s=refresh_s
    )
    prefill_history(app)
    return app


def prefill_history(app: FleetqApp, samples: int = 60) -> None:
    """Give every online demo GPU a minute of (deterministic) utilization history."""
    builder = app.main_screen.poller.builder
    curve = demo_history(samples)
    source = app.source
    assert isinstance(source, StaticSource)
    for host in source.fleet.hosts:
        for gpu in host.gpus:
            target = f"{host.host}:{gpu.index}"
            util = gpu.readings["utilization_gpu_pct"]
            # The first refresh adds the current reading as the last sample.
            values = [curve(gpu.index + len(host.host), t) for t in range(samples - 1)]
            if util is None:
                values[-8:] = [-1.0] * 8  # the GPU fell off the bus 8 s ago
            builder.seed_history(target, values)


async def _screenshot(path: str) -> None:
    app = demo_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        while app.main_screen.poller.last is None:
            await pilot.pause(0.01)
        await pilot.pause()
        app.save_screenshot(path)


if __name__ == "__main__":
    asyncio.run(_screenshot(sys.argv[1] if len(sys.argv) > 1 else "dashboard.svg"))
