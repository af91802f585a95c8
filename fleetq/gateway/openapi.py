"""The OpenAPI 3 description of the gateway, served at ``GET /openapi.json``.

Written by hand, next to the routes it describes; a schemathesis run in the tests checks that
every answer matches it (status codes, content types, bodies).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fleetq import __version__
from fleetq.config import Settings
from fleetq.gateway.auth import OPEN_PATHS
from fleetq.gateway.guard import SAFE_METHODS
from fleetq.gateway.jsonio import json_response
from fleetq.gateway.openapi_schemas import (
    ERRORS,
    OBJ,
    STR,
    Schema,
    component_schemas,
    json_content,
    ref,
    responses,
)
from fleetq.protocol import LIST_STATES
from fleetq.validation import JOB_ID_PATTERN


def _job_id_param() -> Schema:
    return {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": JOB_ID_PATTERN.pattern},
        "description": "A fleetq job id: 16 lowercase hex digits",
    }


def _sse(description: str) -> Schema:
    return {"description": description, "content": {"text/event-stream": {"schema": STR}}}


def _paths(settings: Settings) -> Schema:
    job_id = _job_id_param()
    service_param = {
        "name": "service",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": list(settings.services)},
    }
    target_param = {
        "name": "target",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(:[0-9]+)?$"},
        "description": "HOST, or HOST:GPU (a GPU index)",
    }
    last_event = {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]{1,13}-[0-9]{1,6}$"},
    }
    gone = {"410": ERRORS["410"]}
    open_security: list[Any] = []
    return {
        "/submit": {
            "post": {
                "summary": "Submit a workflow (the replaced API's shape)",
                "tags": ["legacy"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("LegacySubmit")}},
                },
                "responses": responses(
                    json_content(ref("LegacySubmitted"), "Queued"), "400", "413"
                ),
            }
        },
        "/status/{job_id}": {
            "get": {
                "summary": "Status of a job (the replaced API's shape)",
                "tags": ["legacy"],
                "parameters": [job_id],
                "responses": responses(json_content(ref("LegacyStatus"), "The job"), "400", "404"),
            }
        },
        "/stats": {
            "get": {
                "summary": "Queue counts: the replaced API's keys plus fleetq's breakdown",
                "tags": ["legacy"],
                "responses": responses(json_content(ref("Stats"), "Counts")),
            }
        },
        "/next-job": {
            "get": {
                "summary": "Retired: GPU machines run `fleetq supervisor` instead",
                "tags": ["legacy"],
                "responses": {**gone, "401": ERRORS["401"]},
            },
            "post": {
                "summary": "Retired: GPU machines run `fleetq supervisor` instead",
                "tags": ["legacy"],
                "responses": {**gone, "401": ERRORS["401"]},
            },
        },
        "/complete-job/{job_id}": {
            "post": {
                "summary": "Retired: GPU machines run `fleetq supervisor` instead",
                "tags": ["legacy"],
                "parameters": [{**job_id, "schema": STR}],
                "responses": {**gone, "401": ERRORS["401"]},
            }
        },
        "/v1/jobs": {
            "post": {
                "summary": "Submit a job (201 created, 200 when the idempotency key is known)",
                "description": (
                    "Input files (images, masks) the workflow names travel with the job: as "
                    "base64 in `inputs` of a JSON body, or as a multipart body with a `job` "
                    "part (the submit object as JSON) and one `inputs` part per file, named "
                    "by its file name."
                ),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": ref("Submit")},
                        "multipart/form-data": {
                            "schema": ref("SubmitMultipart"),
                            "encoding": {"job": {"contentType": "application/json"}},
                        },
                    },
                },
                "responses": {
                    **responses(json_content(ref("Job"), "Created"), "400", "413", ok_code="201"),
                    "200": json_content(ref("Job"), "The job submitted before with this key"),
                },
            },
            "get": {
                "summary": "A bounded page of jobs in one state",
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(LIST_STATES)},
                    },
                    {
                        "name": "service",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(settings.services)},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": responses(json_content(ref("JobList"), "Jobs"), "400"),
            },
        },
        "/v1/jobs/{job_id}": {
            "get": {
                "summary": "A job",
                "parameters": [job_id],
                "responses": responses(json_content(ref("Job"), "The job"), "400", "404"),
            }
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": {
                "summary": "Cancel a job (a running one is interrupted on its GPU)",
                "parameters": [job_id],
                "responses": responses(json_content(ref("Cancelled"), "Done"), "400", "404", "409"),
            }
        },
        "/v1/jobs/{job_id}/bump": {
            "post": {
                "summary": "Change the priority of a queued job",
                "parameters": [job_id],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("Bump")}},
                },
                "responses": responses(
                    json_content(ref("Bumped"), "New position"), "400", "404", "409", "413"
                ),
            }
        },
        "/v1/jobs/{job_id}/retry": {
            "post": {
                "summary": "Send a failed or cancelled job back to its queue",
                "parameters": [job_id],
                "responses": responses(
                    json_content(ref("Retried"), "New position"), "400", "404", "409"
                ),
            }
        },
        "/v1/jobs/{job_id}/outputs/{index}": {
            "get": {
                "summary": "One output file of a completed job",
                "parameters": [
                    job_id,
                    {
                        "name": "index",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 999999},
                    },
                ],
                "responses": {
                    **responses(
                        {
                            "description": "The file, with its stored content type (outputs "
                            "kept in Redis or a shared folder)",
                            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                        },
                        "400",
                        "404",
                        "409",
                        "410",
                    ),
                    "302": {
                        "description": "Outputs kept in S3: a presigned URL of the file in "
                        "Location, valid for FLEETQ_OUTPUT_URL_TTL_S"
                    },
                },
            }
        },
        "/v1/jobs/{job_id}/preview": {
            "get": {
                "summary": "The latest live preview image of a running job",
                "description": (
                    "The newest preview the backend showed while sampling (ComfyUI with "
                    "--preview-method, A1111 with live previews on), replaced as new ones come "
                    f"(at most every {settings.preview_interval_ms} ms) and gone "
                    f"{settings.preview_ttl_ms} ms after the last one or as soon as the job "
                    "stops running. Never one of the job's outputs. The job's event stream "
                    "announces each new one with a `preview` event."
                ),
                "parameters": [job_id],
                "responses": responses(
                    {
                        "description": "The image (PNG, JPEG or WEBP), sent with "
                        "Cache-Control: no-store",
                        "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "400",
                    "404",
                ),
            }
        },
        "/v1/jobs/{job_id}/events": {
            "get": {
                "summary": "Server-sent events of one job, ending with its terminal event",
                "description": (
                    "A `status` event, then the job's events (`claimed`, `progress`, "
                    "`preview`, `cancel_requested`, `retrying`, `requeued`...) until the "
                    "terminal one (`completed`, `failed`, `cancelled`). A `preview` event "
                    "(`{content_type, size, url, at}`) says a new live preview can be fetched "
                    "from its `url` (GET /v1/jobs/{job_id}/preview)."
                ),
                "parameters": [job_id, last_event],
                "responses": responses(_sse("Event stream"), "400", "404"),
            }
        },
        "/v1/events": {
            "get": {
                "summary": "Server-sent events of the fleet event log (resumable)",
                "parameters": [
                    last_event,
                    {
                        "name": "service",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(settings.services)},
                    },
                ],
                "responses": responses(_sse("Event stream"), "400"),
            }
        },
        "/v1/stats": {
            "get": {
                "summary": "The same document as GET /stats",
                "responses": responses(json_content(ref("Stats"), "Counts")),
            }
        },
        "/v1/services/{service}/pause": {
            "post": {
                "summary": "Pause a service queue",
                "parameters": [service_param],
                "responses": responses(json_content(ref("Paused"), "Paused"), "400"),
            }
        },
        "/v1/services/{service}/resume": {
            "post": {
                "summary": "Resume a service queue",
                "parameters": [service_param],
                "responses": responses(json_content(ref("Paused"), "Resumed"), "400"),
            }
        },
        "/v1/fleet": {
            "get": {
                "summary": "Hosts and GPUs, as their supervisors publish them",
                "responses": responses(json_content(ref("Fleet"), "The fleet")),
            }
        },
        "/v1/fleet/{target}/drain": {
            "post": {
                "summary": "Drain a host or a GPU",
                "parameters": [target_param],
                "responses": responses(json_content(ref("Drained"), "Drained"), "400"),
            }
        },
        "/v1/fleet/{target}/undrain": {
            "post": {
                "summary": "Undrain a host or a GPU",
                "parameters": [target_param],
                "responses": responses(json_content(ref("Drained"), "Undrained"), "400"),
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": responses(
                    {"description": "Exposition text", "content": {"text/plain": {"schema": STR}}}
                ),
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers (never touches Redis)",
                "security": open_security,
                "responses": {"200": json_content(ref("Health"), "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: Redis answers a PING",
                "security": open_security,
                "responses": {
                    "200": json_content(ref("Health"), "Ready"),
                    "503": ERRORS["503"],
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": open_security,
                "responses": {"200": json_content(OBJ, "OpenAPI 3 document")},
            }
        },
    }


def build_openapi(settings: Settings) -> Schema:
    """The OpenAPI 3.0 document for a gateway serving ``settings`` (its service names)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "fleetq gateway",
            "version": __version__,
            "description": "One Redis queue in front of a fleet of ComfyUI / A1111 GPU machines. "
            'Errors are {"error": {"type", "message"}}. Timestamps are UTC ISO-8601.',
        },
        "components": {
            "schemas": component_schemas(settings),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": _with_guard_errors(_paths(settings)),
    }


def _with_guard_errors(paths: Schema) -> Schema:
    """Add the answers of the cross-site guard and the body reader (see ``guard.py``) to every
    operation they apply to: 421 (unknown ``Host``, without tokens) to all but the open paths,
    403 (foreign ``Origin``) to every write, 408 and 415 to every operation with a body."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            answers = operation["responses"]
            if path not in OPEN_PATHS:
                answers.setdefault("421", ERRORS["421"])
            if method.upper() not in SAFE_METHODS:
                answers.setdefault("403", ERRORS["403"])
            if "requestBody" in operation:
                answers.setdefault("408", ERRORS["408"])
                answers.setdefault("415", ERRORS["415"])
    return paths


OPENAPI: web.AppKey[Schema] = web.AppKey("fleetq_openapi")


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])
