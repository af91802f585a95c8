"""The endpoints of the FastAPI service fleetq replaces, with their request and response shapes:
``POST /submit``, ``GET /status/{id}``, ``GET /stats``. The old worker endpoints answer 410.
"""

from __future__ import annotations

from aiohttp import web

from fleetq.errors import InvalidWorkflow
from fleetq.gateway import shapes
from fleetq.gateway.errors import error_response
from fleetq.gateway.jsonio import json_response, read_object
from fleetq.gateway.state import base_url, gateway
from fleetq.metrics import read_queue_snapshot
from fleetq.validation import build_spec, check_job_id

routes = web.RouteTableDef()

_WORKER_GONE = (
    "GPU machines no longer poll the gateway: each one runs `fleetq supervisor`, which claims "
    "jobs from Redis itself (only while its GPU and backend are healthy) and reports progress "
    "and results there. Install it on the GPU machine; see docs/GATEWAY.md."
)


@routes.post("/submit")
async def submit(request: web.Request) -> web.Response:
    """Enqueue ``{workflow, service, priority}``; answers ``{id, status, created_at, position}``.

    Unknown fields are ignored, as the old service ignored them.
    """
    gw = gateway(request)
    body = await read_object(request)
    if "workflow" not in body:
        raise InvalidWorkflow("the field 'workflow' is required")
    spec = build_spec(
        body["workflow"],
        gw.settings,
        service=body.get("service", "comfyui"),
        priority=body.get("priority", 0),
    )
    outcome = await gw.client.store.submit(spec)
    status = await gw.client.status(outcome.job_id)
    return json_response(
        {
            "id": status.id,
            "status": shapes.LEGACY_STATUS[status.state],
            "created_at": shapes.iso(status.submitted_ms),
            "position": status.position,
        }
    )


@routes.get("/status/{job_id}")
async def status(request: web.Request) -> web.Response:
    gw = gateway(request)
    job = await gw.client.status(check_job_id(request.match_info["job_id"]))
    return json_response(shapes.legacy_status(job, base_url(request)))


@routes.get("/stats")
async def stats(request: web.Request) -> web.Response:
    """Queue counts: the old keys first (``queued``, ``priority_queue``, ``standard_queue``,
    ``processing``, ``completed``, ``failed``), then fleetq's breakdown. O(services)."""
    snapshot = await read_queue_snapshot(gateway(request).client.store)
    return json_response(shapes.stats(snapshot))


async def worker_gone(request: web.Request) -> web.Response:
    return error_response(410, "Gone", _WORKER_GONE)


routes.route("*", "/next-job")(worker_gone)
routes.route("*", "/complete-job/{job_id}")(worker_gone)
