"""fleetq's own API under ``/v1``: jobs (submit, list, get, cancel, bump, retry, output files,
live previews),
stats, service pause/resume, and the fleet (hosts, GPUs, drain/undrain).

Every action goes through :class:`fleetq.AsyncClient`, the same calls the CLI and the
dashboard make; only output bytes are read directly (one HGET, never the whole hash).
"""

from __future__ import annotations

import re
from urllib.parse import quote

from aiohttp import web

from fleetq.errors import InvalidArgument, InvalidWorkflow, OutputsExpired
from fleetq.gateway import shapes
from fleetq.gateway.errors import NotCompleted, OutputNotFound, PreviewNotFound
from fleetq.gateway.jsonio import json_response, read_object, reject_unknown
from fleetq.gateway.state import base_url, gateway
from fleetq.gateway.uploads import read_submit
from fleetq.metrics import read_queue_snapshot
from fleetq.model import JobState, safe_filename
from fleetq.outputs.location import file_path, location_kind
from fleetq.protocol import LIST_STATES
from fleetq.schedulable import refuse_unschedulable
from fleetq.validation import (
    build_spec,
    check_host_target,
    check_job_id,
    check_service,
    parse_ascii_int,
)

routes = web.RouteTableDef()

LIST_LIMIT_MAX = 1000
OUTPUT_INDEX_MAX = 999_999
SUBMIT_FIELDS = (
    "workflow", "service", "priority", "max_attempts", "timeout_s", "metadata", "idempotency_key",
    "requires", "require_schedulable", "inputs", "tenant",
)  # fmt: skip
# A content type from a backend's manifest is sent back only if it looks like one.
_CONTENT_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}$"
)


def _job_id(request: web.Request) -> str:
    return check_job_id(request.match_info["job_id"])


@routes.post("/v1/jobs")
async def submit(request: web.Request) -> web.Response:
    """Enqueue a job; 201 with the job, or 200 with the existing job for a known
    ``idempotency_key``. Input files come as base64 in ``inputs`` or as multipart parts
    (:mod:`fleetq.gateway.uploads`). ``requires`` adds explicit requirements;
    ``require_schedulable`` refuses (400, nothing written) a job no live GPU can run now.
    ``tenant`` names who it is for (fair share between tenants)."""
    gw = gateway(request)
    body, inputs = await read_submit(request, gw.settings.max_payload_bytes)
    reject_unknown(body, SUBMIT_FIELDS)
    if "workflow" not in body:
        raise InvalidWorkflow("the field 'workflow' is required")
    spec = build_spec(
        body["workflow"],
        gw.settings,
        service=body.get("service", "comfyui"),
        priority=body.get("priority", 0),
        max_attempts=body.get("max_attempts"),
        timeout_s=body.get("timeout_s"),
        metadata=body.get("metadata"),
        idempotency_key=body.get("idempotency_key"),
        requires=body.get("requires"),
        inputs=inputs,
        tenant=body.get("tenant"),
    )
    schedulable = body.get("require_schedulable", False)
    if not isinstance(schedulable, bool):
        raise InvalidArgument("require_schedulable must be true or false")
    if schedulable:
        refuse_unschedulable(await gw.client.store.unschedulable(spec))
    outcome = await gw.client.store.submit(spec)
    status = await gw.client.status(outcome.job_id)
    return json_response(shapes.job(status, base_url(request)), 201 if outcome.created else 200)


@routes.get("/v1/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    """A bounded page of jobs in one state, optionally of one service (``?state=&service=
    &limit=``); queued jobs in run order, finished ones newest first."""
    gw = gateway(request)
    query = request.query
    reject_unknown(dict(query), ("state", "service", "limit"))
    state = query.get("state", "queued")
    if state not in LIST_STATES:
        raise InvalidArgument(f"state must be one of {', '.join(LIST_STATES)}, not {state!r}")
    service = query.get("service")
    if service is not None:
        check_service(service, gw.settings)
    limit = parse_ascii_int(query.get("limit", "50"), "limit", 1, LIST_LIMIT_MAX)
    jobs = await gw.client.jobs(state, service, limit)
    url = base_url(request)
    return json_response({"jobs": [shapes.job(j, url) for j in jobs]})


@routes.get("/v1/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    status = await gateway(request).client.status(_job_id(request))
    return json_response(shapes.job(status, base_url(request)))


@routes.post("/v1/jobs/{job_id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    """``cancelled`` for a queued job; ``cancelling`` for a running one (its GPU is told)."""
    job_id = _job_id(request)
    result = await gateway(request).client.cancel(job_id, by="gateway")
    return json_response({"id": job_id, "result": result})


@routes.post("/v1/jobs/{job_id}/bump")
async def bump(request: web.Request) -> web.Response:
    """Change a queued job's priority (``{"priority": int}``); answers its new position."""
    job_id = _job_id(request)
    body = await read_object(request)
    reject_unknown(body, ("priority",))
    if "priority" not in body:
        raise InvalidArgument("the field 'priority' is required")
    position = await gateway(request).client.bump(job_id, body["priority"], by="gateway")
    return json_response({"id": job_id, "priority": body["priority"], "position": position})


@routes.post("/v1/jobs/{job_id}/retry")
async def retry(request: web.Request) -> web.Response:
    """Send a failed or cancelled job back to its queue with fresh attempts."""
    job_id = _job_id(request)
    position = await gateway(request).client.retry(job_id, by="gateway")
    return json_response({"id": job_id, "position": position})


@routes.get("/v1/jobs/{job_id}/outputs/{index}")
async def output(request: web.Request) -> web.StreamResponse:
    """One output file, with its stored content type and a download file name: served from
    Redis or the shared folder, or a redirect to a presigned URL for the S3 store."""
    gw = gateway(request)
    job_id = _job_id(request)
    index = parse_ascii_int(request.match_info["index"], "output index", 0, OUTPUT_INDEX_MAX)
    status = await gw.client.status(job_id)
    if status.state is not JobState.COMPLETED:
        raise NotCompleted(job_id, status.state.value, "read the outputs of")
    if index >= len(status.outputs):
        raise OutputNotFound(f"job {job_id} has {len(status.outputs)} output file(s); no {index}")
    meta = status.outputs[index]
    name = safe_filename(meta.filename, fallback=f"{job_id}_{index}")
    content_type = meta.content_type if _CONTENT_TYPE.match(meta.content_type) else ""
    headers = {
        "Content-Disposition": _disposition(name),
        # The bytes come from a backend; never let a browser sniff them into HTML.
        "X-Content-Type-Options": "nosniff",
    }
    kind = location_kind(meta.location)
    if kind == "s3":
        raise web.HTTPFound(gw.client.outputs.link(meta))
    if kind == "file":
        path = file_path(meta.location)
        if not path.is_file():
            raise OutputsExpired(f"the outputs of job {job_id} have expired ({meta.location})")
        headers["Content-Type"] = content_type or "application/octet-stream"
        return web.FileResponse(path, headers=headers)
    data = await gw.client.store.command("hget", gw.client.store.keys.outputs(job_id), str(index))
    if data is None:
        raise OutputsExpired(
            f"the outputs of job {job_id} have expired (kept for FLEETQ_OUTPUT_TTL_S)"
        )
    return web.Response(
        body=data, content_type=content_type or "application/octet-stream", headers=headers
    )


@routes.get("/v1/jobs/{job_id}/preview")
async def preview(request: web.Request) -> web.Response:
    """The latest live preview of a running job (an image; 404 ``PreviewNotFound`` when there
    is none). Never cached: the next one replaces it within a second."""
    gw = gateway(request)
    job_id = _job_id(request)
    latest = await gw.client.preview(job_id)
    if latest is None:
        status = await gw.client.status(job_id)  # 404 JobNotFound for an unknown job
        why = "it is not running" if status.state is not JobState.RUNNING else "none yet"
        raise PreviewNotFound(f"job {job_id} has no live preview: {why}")
    content_type = latest.content_type if _CONTENT_TYPE.match(latest.content_type) else ""
    return web.Response(
        body=latest.data,
        content_type=content_type or "application/octet-stream",
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Preview-At": shapes.iso(latest.at_ms) or "",
        },
    )


def _disposition(name: str) -> str:
    # safe_filename leaves no quote or backslash; filename* carries the exact UTF-8 name.
    return f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"


@routes.get("/v1/stats")
async def stats(request: web.Request) -> web.Response:
    """The same document as ``GET /stats``."""
    snapshot = await read_queue_snapshot(gateway(request).client.store)
    return json_response(shapes.stats(snapshot))


def _service(request: web.Request) -> str:
    return check_service(request.match_info["service"], gateway(request).settings)


@routes.post("/v1/services/{service}/pause")
async def pause(request: web.Request) -> web.Response:
    """Stop GPUs from claiming this service's jobs (queued jobs stay queued)."""
    service = _service(request)
    changed = await gateway(request).client.pause(service)
    return json_response({"service": service, "paused": True, "changed": changed})


@routes.post("/v1/services/{service}/resume")
async def resume(request: web.Request) -> web.Response:
    service = _service(request)
    changed = await gateway(request).client.resume(service)
    return json_response({"service": service, "paused": False, "changed": changed})


@routes.get("/v1/fleet")
async def fleet(request: web.Request) -> web.Response:
    """Every supervisor host (offline ones included) with its GPU records."""
    return json_response(shapes.fleet(await gateway(request).client.fleet()))


@routes.post("/v1/fleet/{target}/drain")
async def drain(request: web.Request) -> web.Response:
    """Stop a host (``HOST``) or one GPU (``HOST:GPU``) from claiming; running jobs finish."""
    target = check_host_target(request.match_info["target"])
    changed = await gateway(request).client.drain(target)
    return json_response({"target": target, "drained": True, "changed": changed})


@routes.post("/v1/fleet/{target}/undrain")
async def undrain(request: web.Request) -> web.Response:
    target = check_host_target(request.match_info["target"])
    changed = await gateway(request).client.undrain(target)
    return json_response({"target": target, "drained": False, "changed": changed})
