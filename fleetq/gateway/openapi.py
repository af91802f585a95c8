"""The OpenAPI 3 description of the gateway, served at ``GET /openapi.json``.

Written by hand, next to the routes it describes; a schemathesis run in the tests checks that
every answer matches it (status codes, content types, bodies).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fleetq import __version__
from fleetq.config import Settings
from fleetq.gateway.jsonio import json_response
from fleetq.protocol import LIST_STATES
from fleetq.validation import JOB_ID_PATTERN, PRIORITY_MAX, PRIORITY_MIN

Schema = dict[str, Any]

_REF = "#/components/schemas/"


def _ref(name: str) -> Schema:
    return {"$ref": _REF + name}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


_INT = {"type": "integer"}
_COUNT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_TIME = {"type": "string", "format": "date-time"}
_OBJ = {"type": "object"}


def _obj(props: dict[str, Schema], *, closed: bool = True) -> Schema:
    schema: Schema = {"type": "object", "required": list(props), "properties": props}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Schema:
    return _json(_ref("Error"), description)


_ERRORS = {
    "400": _error("Invalid input (malformed JSON, wrong type, out of range, bad id)"),
    "401": _error("Missing or wrong bearer token (when tokens are configured)"),
    "404": _error("No such job, or no such output file"),
    "409": _error("The job is not in a state that allows this"),
    "410": _error("Gone: the outputs expired, or the endpoint was retired"),
    "413": _error("The request body or the job payload is too large"),
    "503": _error("Redis is unavailable; retry later"),
}


def _responses(ok: Schema, *codes: str, ok_code: str = "200") -> Schema:
    out: Schema = {ok_code: ok}
    for code in ("401", "503", *codes):
        out[code] = _ERRORS[code]
    return out


def _job_id_param() -> Schema:
    return {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": JOB_ID_PATTERN.pattern},
        "description": "A fleetq job id: 16 lowercase hex digits",
    }


def _schemas(settings: Settings) -> Schema:
    service = {"type": "string", "enum": list(settings.services)}
    priority = {"type": "integer", "minimum": PRIORITY_MIN, "maximum": PRIORITY_MAX}
    output = _obj(
        {
            "index": _COUNT,
            "filename": _STR,
            "content_type": _STR,
            "size": _COUNT,
            "url": {"type": "string", "description": "Absolute URL of the file"},
        }
    )
    service_stats = _obj(
        {
            "queued": _COUNT,
            "priority_queue": _COUNT,
            "standard_queue": _COUNT,
            "delayed": _COUNT,
            "processing": _COUNT,
            "completed": _COUNT,
            "failed": _COUNT,
            "cancelled": _COUNT,
            "completed_last_minute": _COUNT,
            "failed_last_minute": _COUNT,
            "oldest_wait_s": _nullable({"type": "number"}),
            "paused": _BOOL,
        }
    )
    stats_props: dict[str, Schema] = {
        k: _COUNT
        for k in (
            "queued", "priority_queue", "standard_queue", "processing", "completed", "failed",
            "cancelled", "delayed", "completed_last_minute", "failed_last_minute",
        )
    }  # fmt: skip
    stats_props |= {
        "oldest_wait_s": _nullable({"type": "number"}),
        "services": {"type": "object", "additionalProperties": _ref("ServiceStats")},
        "paused": {"type": "array", "items": _STR},
        "drained": {"type": "array", "items": _STR},
        "generated_at": _TIME,
    }
    job_error = _obj(
        {"type": _STR, "message": _STR, "node": _nullable(_STR), "kind": _nullable(_STR)}
    )
    attempt = _obj(
        {
            "claim": _INT,
            "host": _STR,
            "gpu": _nullable(_INT),
            "started_at": _nullable(_TIME),
            "ended_at": _nullable(_TIME),
            "outcome": _nullable(_STR),
            "detail": _nullable(_STR),
        }
    )
    job = _obj(
        {
            "id": _STR,
            "service": _STR,
            "state": {"type": "string", "enum": list(LIST_STATES)},
            "priority": _INT,
            "position": _nullable(_COUNT),
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "progress_text": _STR,
            "attempts": _COUNT,
            "max_attempts": _COUNT,
            "claims": _COUNT,
            "lost_leases": _COUNT,
            "host": _nullable(_STR),
            "gpu": _nullable(_INT),
            "error": _nullable(job_error),
            "submitted_at": _nullable(_TIME),
            "enqueued_at": _nullable(_TIME),
            "started_at": _nullable(_TIME),
            "finished_at": _nullable(_TIME),
            "ready_at": _nullable(_TIME),
            "timeout_s": {"type": "number"},
            "cancel_requested": _BOOL,
            "metadata": _OBJ,
            "outputs": {"type": "array", "items": _ref("Output")},
            "timeline": {"type": "array", "items": attempt},
        }
    )
    return {
        "Error": _obj({"error": _obj({"type": _STR, "message": _STR})}),
        "Output": output,
        "LegacySubmit": {
            "type": "object",
            "required": ["workflow"],
            "properties": {
                "workflow": {
                    "type": "object",
                    "description": "ComfyUI API-format graph, or an A1111 txt2img/img2img body",
                },
                "service": service,
                "priority": priority,
            },
        },
        "LegacySubmitted": _obj(
            {
                "id": _STR,
                "status": {"type": "string", "enum": ["queued"]},
                "created_at": _TIME,
                "position": _nullable(_COUNT),
            }
        ),
        "LegacyStatus": _obj(
            {
                "id": _STR,
                "status": {
                    "type": "string",
                    "enum": ["queued", "processing", "completed", "failed", "cancelled"],
                },
                "created_at": _TIME,
                "started_at": _nullable(_TIME),
                "completed_at": _nullable(_TIME),
                "position": _nullable(_COUNT),
                "result": _nullable({"type": "array", "items": _ref("Output")}),
                "error": _nullable(_STR),
            }
        ),
        "ServiceStats": service_stats,
        "Stats": _obj(stats_props),
        "Submit": {
            "type": "object",
            "additionalProperties": False,
            "required": ["workflow"],
            "properties": {
                "workflow": {"type": "object"},
                "service": service,
                "priority": priority,
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                "timeout_s": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                "metadata": {"type": "object"},
                "idempotency_key": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
            },
        },
        "Job": job,
        "JobList": _obj({"jobs": {"type": "array", "items": _ref("Job")}}),
        "Cancelled": _obj(
            {"id": _STR, "result": {"type": "string", "enum": ["cancelled", "cancelling"]}}
        ),
        "Bump": _obj({"priority": priority}),
        "Bumped": _obj({"id": _STR, "priority": _INT, "position": _nullable(_COUNT)}),
        "Retried": _obj({"id": _STR, "position": _nullable(_COUNT)}),
        "Paused": _obj({"service": _STR, "paused": _BOOL, "changed": _BOOL}),
        "Drained": _obj({"target": _STR, "drained": _BOOL, "changed": _BOOL}),
        "Fleet": _obj(
            {
                "gpu_count": _COUNT,
                "hosts": {
                    "type": "array",
                    "items": _obj(
                        {
                            "host": _STR,
                            "online": _BOOL,
                            "last_seen_at": _TIME,
                            "record": _OBJ,
                            "gpus": {"type": "array", "items": _OBJ},
                        }
                    ),
                },
            }
        ),
        "Health": _obj({"status": _STR}),
    }


def _sse(description: str) -> Schema:
    return {"description": description, "content": {"text/event-stream": {"schema": _STR}}}


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
    gone = {"410": _ERRORS["410"]}
    open_security: list[Any] = []
    return {
        "/submit": {
            "post": {
                "summary": "Submit a workflow (the replaced API's shape)",
                "tags": ["legacy"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("LegacySubmit")}},
                },
                "responses": _responses(_json(_ref("LegacySubmitted"), "Queued"), "400", "413"),
            }
        },
        "/status/{job_id}": {
            "get": {
                "summary": "Status of a job (the replaced API's shape)",
                "tags": ["legacy"],
                "parameters": [job_id],
                "responses": _responses(_json(_ref("LegacyStatus"), "The job"), "400", "404"),
            }
        },
        "/stats": {
            "get": {
                "summary": "Queue counts: the replaced API's keys plus fleetq's breakdown",
                "tags": ["legacy"],
                "responses": _responses(_json(_ref("Stats"), "Counts")),
            }
        },
        "/next-job": {
            "get": {
                "summary": "Retired: GPU machines run `fleetq supervisor` instead",
                "tags": ["legacy"],
                "responses": {**gone, "401": _ERRORS["401"]},
            },
            "post": {
                "summary": "Retired: GPU machines run `fleetq supervisor` instead",
                "tags": ["legacy"],
                "responses": {**gone, "401": _ERRORS["401"]},
            },
        },
        "/complete-job/{job_id}": {
            "post": {
                "summary": "Retired: GPU machines run `fleetq supervisor` instead",
                "tags": ["legacy"],
                "parameters": [{**job_id, "schema": _STR}],
                "responses": {**gone, "401": _ERRORS["401"]},
            }
        },
        "/v1/jobs": {
            "post": {
                "summary": "Submit a job (201 created, 200 when the idempotency key is known)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Submit")}},
                },
                "responses": {
                    **_responses(_json(_ref("Job"), "Created"), "400", "413", ok_code="201"),
                    "200": _json(_ref("Job"), "The job submitted before with this key"),
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
                "responses": _responses(_json(_ref("JobList"), "Jobs"), "400"),
            },
        },
        "/v1/jobs/{job_id}": {
            "get": {
                "summary": "A job",
                "parameters": [job_id],
                "responses": _responses(_json(_ref("Job"), "The job"), "400", "404"),
            }
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": {
                "summary": "Cancel a job (a running one is interrupted on its GPU)",
                "parameters": [job_id],
                "responses": _responses(_json(_ref("Cancelled"), "Done"), "400", "404", "409"),
            }
        },
        "/v1/jobs/{job_id}/bump": {
            "post": {
                "summary": "Change the priority of a queued job",
                "parameters": [job_id],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Bump")}},
                },
                "responses": _responses(
                    _json(_ref("Bumped"), "New position"), "400", "404", "409", "413"
                ),
            }
        },
        "/v1/jobs/{job_id}/retry": {
            "post": {
                "summary": "Send a failed or cancelled job back to its queue",
                "parameters": [job_id],
                "responses": _responses(
                    _json(_ref("Retried"), "New position"), "400", "404", "409"
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
                "responses": _responses(
                    {
                        "description": "The file, with its stored content type",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "400",
                    "404",
                    "409",
                    "410",
                ),
            }
        },
        "/v1/jobs/{job_id}/events": {
            "get": {
                "summary": "Server-sent events of one job, ending with its terminal event",
                "parameters": [job_id, last_event],
                "responses": _responses(_sse("Event stream"), "400", "404"),
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
                "responses": _responses(_sse("Event stream"), "400"),
            }
        },
        "/v1/stats": {
            "get": {
                "summary": "The same document as GET /stats",
                "responses": _responses(_json(_ref("Stats"), "Counts")),
            }
        },
        "/v1/services/{service}/pause": {
            "post": {
                "summary": "Pause a service queue",
                "parameters": [service_param],
                "responses": _responses(_json(_ref("Paused"), "Paused"), "400"),
            }
        },
        "/v1/services/{service}/resume": {
            "post": {
                "summary": "Resume a service queue",
                "parameters": [service_param],
                "responses": _responses(_json(_ref("Paused"), "Resumed"), "400"),
            }
        },
        "/v1/fleet": {
            "get": {
                "summary": "Hosts and GPUs, as their supervisors publish them",
                "responses": _responses(_json(_ref("Fleet"), "The fleet")),
            }
        },
        "/v1/fleet/{target}/drain": {
            "post": {
                "summary": "Drain a host or a GPU",
                "parameters": [target_param],
                "responses": _responses(_json(_ref("Drained"), "Drained"), "400"),
            }
        },
        "/v1/fleet/{target}/undrain": {
            "post": {
                "summary": "Undrain a host or a GPU",
                "parameters": [target_param],
                "responses": _responses(_json(_ref("Drained"), "Undrained"), "400"),
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": _responses(
                    {"description": "Exposition text", "content": {"text/plain": {"schema": _STR}}}
                ),
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: the process answers (never touches Redis)",
                "security": open_security,
                "responses": {"200": _json(_ref("Health"), "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: Redis answers a PING",
                "security": open_security,
                "responses": {
                    "200": _json(_ref("Health"), "Ready"),
                    "503": _ERRORS["503"],
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": open_security,
                "responses": {"200": _json(_OBJ, "OpenAPI 3 document")},
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
            "schemas": _schemas(settings),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": _paths(settings),
    }


OPENAPI: web.AppKey[Schema] = web.AppKey("fleetq_openapi")


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])
