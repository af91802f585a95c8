"""What the gateway answers: fleetq's model turned into JSON.

Timestamps are UTC ISO-8601 strings with milliseconds and an explicit offset
(``2025-01-31T12:00:00.123+00:00``), as FastAPI serialises an aware datetime, and as
``datetime.fromisoformat`` reads on every Python version. Missing times are ``null``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fleetq.eta import Eta
from fleetq.fleet import FleetView
from fleetq.metrics import QueueSnapshot
from fleetq.model import JobState, JobStatus

#: fleetq state -> the status word of the API fleetq replaces.
LEGACY_STATUS = {
    JobState.QUEUED: "queued",
    JobState.RUNNING: "processing",
    JobState.COMPLETED: "completed",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
}


def iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch as a UTC ISO-8601 string."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def output_path(job_id: str, index: int) -> str:
    return f"/v1/jobs/{job_id}/outputs/{index}"


def preview_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}/preview"


def outputs(status: JobStatus, base_url: str) -> list[dict[str, Any]]:
    """The output files of a job, each with the URL that fetches it."""
    return [
        {
            "index": i,
            "filename": f.filename,
            "content_type": f.content_type,
            "size": f.size,
            "url": base_url + output_path(status.id, i),
        }
        for i, f in enumerate(status.outputs)
    ]


def legacy_status(status: JobStatus, base_url: str) -> dict[str, Any]:
    """``GET /status/{id}`` of the replaced API. ``completed_at`` is the finish time of any
    terminal state; ``result`` lists the output files of a completed job, else ``null``."""
    completed = status.state is JobState.COMPLETED
    return {
        "id": status.id,
        "status": LEGACY_STATUS[status.state],
        "created_at": iso(status.submitted_ms),
        "started_at": iso(status.started_ms),
        "completed_at": iso(status.finished_ms),
        "position": status.position,
        "result": outputs(status, base_url) if completed else None,
        "error": status.error.describe()
        if status.error and status.state is JobState.FAILED
        else None,
    }


def job(status: JobStatus, base_url: str) -> dict[str, Any]:
    """A job as fleetq's own API shows it."""
    error = status.error
    return {
        "id": status.id,
        "service": status.service,
        "state": status.state.value,
        "priority": status.priority,
        "position": status.position,
        "progress": status.progress,
        "progress_text": status.progress_text,
        "attempts": status.attempts,
        "max_attempts": status.max_attempts,
        "claims": status.claims,
        "lost_leases": status.lost_leases,
        "host": status.host,
        "gpu": status.gpu,
        "error": None
        if error is None
        else {
            "type": error.type,
            "message": error.message,
            "node": error.node,
            "kind": None if error.kind is None else error.kind.value,
        },
        "submitted_at": iso(status.submitted_ms),
        "enqueued_at": iso(status.enqueued_ms),
        "started_at": iso(status.started_ms),
        "finished_at": iso(status.finished_ms),
        "ready_at": iso(status.ready_ms),
        "requirements": dict(status.requirements),
        "unschedulable": status.unschedulable,
        "timeout_s": status.timeout_ms / 1000,
        "cancel_requested": status.cancel_requested,
        "metadata": dict(status.metadata),
        "tenant": status.tenant,
        "outputs": outputs(status, base_url),
        "eta": None if status.eta is None else eta(status.eta),
        "timeline": [
            {
                "claim": a.claim,
                "host": a.host,
                "gpu": a.gpu,
                "started_at": iso(a.started_ms),
                "ended_at": iso(a.ended_ms),
                "outcome": a.outcome,
                "detail": a.detail,
            }
            for a in status.timeline
        ],
    }


def eta(e: Eta) -> dict[str, Any]:
    """A queued job's estimated start and finish (fleetq.eta), and what they rest on."""
    return {
        "start_at": iso(e.start_ms),
        "finish_at": iso(e.finish_ms),
        "estimated_at": iso(e.now_ms),
        "ahead": round(e.ahead, 2),
        "gpus": e.gpus,
        "busy_gpus": e.busy,
        "run_s": e.run_ms / 1000,
        "guess": e.guess,
    }


def stats(snapshot: QueueSnapshot) -> dict[str, Any]:
    """``GET /stats``: the replaced API's keys, then fleetq's per-service breakdown.

    ``priority_queue`` counts ready jobs with priority > 0, ``standard_queue`` those with
    priority <= 0; ``delayed`` jobs wait out a retry backoff. ``queued`` is all three.
    """
    stats = snapshot.stats
    services: dict[str, dict[str, Any]] = {}
    for s in stats.services:
        band = snapshot.bands.get(s.service, {})
        wait_ms = s.oldest_wait_ms(stats.now_ms)
        services[s.service] = {
            "queued": s.queued,
            "priority_queue": band.get("high", 0),
            "standard_queue": band.get("normal", 0) + band.get("low", 0),
            "delayed": s.delayed,
            "processing": s.running,
            "completed": s.completed,
            "failed": s.failed,
            "cancelled": s.cancelled,
            "completed_last_minute": s.completed_last_minute,
            "failed_last_minute": s.failed_last_minute,
            "oldest_wait_s": None if wait_ms is None else wait_ms / 1000,
            "paused": s.paused,
            "tenants": {
                t.tenant: {"queued": t.queued, "running": t.running, "weight": t.weight}
                for t in s.tenants
            },
        }
    rows = list(services.values())
    waits = [r["oldest_wait_s"] for r in rows if r["oldest_wait_s"] is not None]

    def total(key: str) -> int:
        return sum(int(r[key]) for r in rows)

    return {
        "queued": total("queued"),
        "priority_queue": total("priority_queue"),
        "standard_queue": total("standard_queue"),
        "processing": total("processing"),
        "completed": total("completed"),
        "failed": total("failed"),
        "cancelled": total("cancelled"),
        "delayed": total("delayed"),
        "completed_last_minute": total("completed_last_minute"),
        "failed_last_minute": total("failed_last_minute"),
        "oldest_wait_s": max(waits) if waits else None,
        "services": services,
        "paused": sorted(name for name, row in services.items() if row["paused"]),
        "drained": list(stats.drained),
        "generated_at": iso(stats.now_ms),
    }


def fleet(view: FleetView) -> dict[str, Any]:
    """``GET /v1/fleet``: hosts with their published records and GPU records, as published."""
    return {
        "gpu_count": view.gpu_count,
        "hosts": [
            {
                "host": h.host,
                "online": h.online,
                "last_seen_at": iso(h.last_seen_ms),
                "record": h.record.to_json() if h.online else {},
                "gpus": [g.to_json() for g in h.gpus],
            }
            for h in view.hosts
        ],
    }
