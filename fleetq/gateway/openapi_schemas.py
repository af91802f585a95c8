"""The building blocks and the component schemas of the gateway's OpenAPI document."""

from __future__ import annotations

from typing import Any

from fleetq.config import Settings
from fleetq.inputs import MAX_INPUT_FILES
from fleetq.protocol import LIST_STATES
from fleetq.tenants import TENANT_PATTERN
from fleetq.validation import MAX_TIMEOUT_S, PRIORITY_MAX, PRIORITY_MIN

Schema = dict[str, Any]

_REF = "#/components/schemas/"


def ref(name: str) -> Schema:
    return {"$ref": _REF + name}


def nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


INT = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
OBJ = {"type": "object"}


def obj(props: dict[str, Schema], *, closed: bool = True) -> Schema:
    schema: Schema = {"type": "object", "required": list(props), "properties": props}
    if closed:
        schema["additionalProperties"] = False
    return schema


def json_content(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_content(description: str) -> Schema:
    return json_content(ref("Error"), description)


ERRORS = {
    "400": error_content("Invalid input (malformed JSON, wrong type, out of range, bad id)"),
    "401": error_content("Missing or wrong bearer token (when tokens are configured)"),
    "403": error_content("A write from a web page of an origin that is not allowed"),
    "404": error_content("No such job, or no such output file"),
    "408": error_content("The request body did not arrive in time"),
    "409": error_content("The job is not in a state that allows this"),
    "410": error_content("Gone: the outputs expired, or the endpoint was retired"),
    "413": error_content("The request body or the job payload is too large"),
    "415": error_content("A JSON body sent with another Content-Type than application/json"),
    "421": error_content("The Host header does not name this gateway (when it has no token)"),
    "503": error_content("Redis is unavailable, or too many event streams; retry later"),
}


def responses(ok: Schema, *codes: str, ok_code: str = "200") -> Schema:
    out: Schema = {ok_code: ok}
    for code in ("401", "503", *codes):
        out[code] = ERRORS[code]
    return out


def component_schemas(settings: Settings) -> Schema:
    """``components/schemas``: request and response bodies (service names from settings)."""
    service = {"type": "string", "enum": list(settings.services)}
    priority = {"type": "integer", "minimum": PRIORITY_MIN, "maximum": PRIORITY_MAX}
    output = obj(
        {
            "index": COUNT,
            "filename": STR,
            "content_type": STR,
            "size": COUNT,
            "url": {"type": "string", "description": "Absolute URL of the file"},
        }
    )
    service_stats = obj(
        {
            "queued": COUNT,
            "priority_queue": COUNT,
            "standard_queue": COUNT,
            "delayed": COUNT,
            "processing": COUNT,
            "completed": COUNT,
            "failed": COUNT,
            "cancelled": COUNT,
            "completed_last_minute": COUNT,
            "failed_last_minute": COUNT,
            "oldest_wait_s": nullable({"type": "number"}),
            "paused": BOOL,
            "tenants": {
                "type": "object",
                "description": "tenants with queued or running jobs, by name",
                "additionalProperties": obj(
                    {"queued": COUNT, "running": COUNT, "weight": {"type": "number"}}
                ),
            },
        }
    )
    stats_props: dict[str, Schema] = {
        k: COUNT
        for k in (
            "queued", "priority_queue", "standard_queue", "processing", "completed", "failed",
            "cancelled", "delayed", "completed_last_minute", "failed_last_minute",
        )
    }  # fmt: skip
    stats_props |= {
        "oldest_wait_s": nullable({"type": "number"}),
        "services": {"type": "object", "additionalProperties": ref("ServiceStats")},
        "paused": {"type": "array", "items": STR},
        "drained": {"type": "array", "items": STR},
        "generated_at": TIME,
    }
    job_error = obj({"type": STR, "message": STR, "node": nullable(STR), "kind": nullable(STR)})
    attempt = obj(
        {
            "claim": INT,
            "host": STR,
            "gpu": nullable(INT),
            "started_at": nullable(TIME),
            "ended_at": nullable(TIME),
            "outcome": nullable(STR),
            "detail": nullable(STR),
        }
    )
    eta = obj(
        {
            "start_at": TIME,
            "finish_at": TIME,
            "estimated_at": TIME,
            "ahead": {"type": "number", "minimum": 0},
            "gpus": COUNT,
            "busy_gpus": COUNT,
            "run_s": {"type": "number", "minimum": 0},
            "guess": BOOL,
        }
    )
    job = obj(
        {
            "id": STR,
            "service": STR,
            "state": {"type": "string", "enum": list(LIST_STATES)},
            "priority": INT,
            "position": nullable(COUNT),
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "progress_text": STR,
            "attempts": COUNT,
            "max_attempts": COUNT,
            "claims": COUNT,
            "lost_leases": COUNT,
            "host": nullable(STR),
            "gpu": nullable(INT),
            "error": nullable(job_error),
            "submitted_at": nullable(TIME),
            "enqueued_at": nullable(TIME),
            "started_at": nullable(TIME),
            "finished_at": nullable(TIME),
            "ready_at": nullable(TIME),
            "requirements": {
                "type": "object",
                "description": "what the job needs of a machine, canonical form (status only)",
            },
            "unschedulable": nullable(
                {"type": "string", "description": "why no live GPU can run this queued job"}
            ),
            "timeout_s": {"type": "number"},
            "cancel_requested": BOOL,
            "metadata": OBJ,
            "tenant": STR,
            "outputs": {"type": "array", "items": ref("Output")},
            "eta": nullable(eta),
            "timeline": {"type": "array", "items": attempt},
        }
    )
    return {
        "Error": obj({"error": obj({"type": STR, "message": STR})}),
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
        "LegacySubmitted": obj(
            {
                "id": STR,
                "status": {"type": "string", "enum": ["queued"]},
                "created_at": TIME,
                "position": nullable(COUNT),
            }
        ),
        "LegacyStatus": obj(
            {
                "id": STR,
                "status": {
                    "type": "string",
                    "enum": ["queued", "processing", "completed", "failed", "cancelled"],
                },
                "created_at": TIME,
                "started_at": nullable(TIME),
                "completed_at": nullable(TIME),
                "position": nullable(COUNT),
                "result": nullable({"type": "array", "items": ref("Output")}),
                "error": nullable(STR),
            }
        ),
        "ServiceStats": service_stats,
        "Stats": obj(stats_props),
        "Submit": {
            "type": "object",
            "additionalProperties": False,
            "required": ["workflow"],
            "properties": {
                "workflow": {"type": "object"},
                "service": service,
                "priority": priority,
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                "timeout_s": {
                    "type": "number",
                    "exclusiveMinimum": True,
                    "minimum": 0,
                    "maximum": MAX_TIMEOUT_S,
                },
                "metadata": {"type": "object"},
                "idempotency_key": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
                "requires": {
                    "type": "object",
                    "additionalProperties": False,
                    "description": "explicit requirements, besides those derived from the workflow",
                    "properties": {
                        "labels": {
                            "type": "object",
                            "additionalProperties": {"type": "string", "maxLength": 128},
                        },
                        "min_vram_gb": {
                            "type": "number",
                            "exclusiveMinimum": True,
                            "minimum": 0,
                            "maximum": 65536,
                        },
                    },
                },
                "require_schedulable": {
                    "type": "boolean",
                    "description": "refuse (400, nothing written) a job no live GPU can run",
                },
                "tenant": {
                    "type": "string",
                    "pattern": TENANT_PATTERN.pattern,
                    "description": "who the job is for (fair share within a priority is between "
                    "tenants); default: metadata's tenant key, else 'default'",
                },
                "inputs": {
                    "type": "object",
                    "description": "input files by file name, each in base64",
                    "maxProperties": MAX_INPUT_FILES,
                    "additionalProperties": {"type": "string", "format": "byte"},
                },
            },
        },
        "SubmitMultipart": {
            "type": "object",
            "required": ["job"],
            "properties": {
                "job": {
                    "type": "object",
                    "description": "the submit object (as `Submit`, without `inputs`)",
                },
                "inputs": {
                    "type": "array",
                    "description": "one part per input file; its file name is the input's name",
                    "maxItems": MAX_INPUT_FILES,
                    "items": {"type": "string", "format": "binary"},
                },
            },
        },
        "Job": job,
        "JobList": obj({"jobs": {"type": "array", "items": ref("Job")}}),
        "Cancelled": obj(
            {"id": STR, "result": {"type": "string", "enum": ["cancelled", "cancelling"]}}
        ),
        "Bump": obj({"priority": priority}),
        "Bumped": obj({"id": STR, "priority": INT, "position": nullable(COUNT)}),
        "Retried": obj({"id": STR, "position": nullable(COUNT)}),
        "Paused": obj({"service": STR, "paused": BOOL, "changed": BOOL}),
        "Drained": obj({"target": STR, "drained": BOOL, "changed": BOOL}),
        "Fleet": obj(
            {
                "gpu_count": COUNT,
                "hosts": {
                    "type": "array",
                    "items": obj(
                        {
                            "host": STR,
                            "online": BOOL,
                            "last_seen_at": TIME,
                            "record": OBJ,
                            "gpus": {"type": "array", "items": OBJ},
                        }
                    ),
                },
            }
        ),
        "Health": obj({"status": STR}),
    }
