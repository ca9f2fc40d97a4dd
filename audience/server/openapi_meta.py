"""The custom audience syncs' part of the OpenAPI document (server/meta_syncs.py):
their schemas and paths, which ``openapi.document`` merges in."""

from __future__ import annotations

from typing import Any

from audience.integrations.meta.sync.definitions import JOB_STATES
from audience.server import openapi_parts as oa

_COUNT = {"type": "integer", "minimum": 0}
_SHORT = {"type": "string", "maxLength": 200}

SCHEMAS: dict[str, Any] = {
    "Sync": {
        "type": "object",
        "required": ["name", "node", "segment", "integration", "match_keys"],
        "properties": {
            "name": {"type": "string"},
            "node": {"type": "string"},
            "segment": {"type": "string"},
            "integration": {"type": "string"},
            "match_keys": {"type": "array", "items": {"enum": ["email", "phone"]}},
            "email_field": oa.nullable("string"),
            "phone_field": oa.nullable("string"),
            "consent_field": oa.nullable("string"),
            "country_code": {"type": "string"},
            "audience_id": oa.nullable("string"),
            "audience_name": oa.nullable("string"),
            "customer_file_source": oa.nullable("string"),
            "schedule": oa.nullable("string"),
            "next_due": oa.nullable("string"),
            "last_job": {"oneOf": [oa.ref("SyncJob"), {"type": "null"}]},
            "platform": {
                "type": "object",
                "description": "with platform=true: approximate_count_lower_bound, "
                "approximate_count_upper_bound, operation_status, delivery_status "
                "(empty before the first run created the audience)",
            },
        },
    },
    "SyncJob": {
        "type": "object",
        "required": ["id", "sync", "mode", "state", "progress", "batches_done", "counts"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "sync": {"type": "string"},
            "mode": {"enum": ["diff", "replace"]},
            "origin": {"enum": ["manual", "schedule"]},
            "state": {"enum": list(JOB_STATES)},
            "recovery": {
                "oneOf": [{"enum": ["resumed", "restarted"]}, {"type": "null"}],
                "description": "set when a worker died and another took the job over",
            },
            "created": oa.nullable("string"),
            "started": oa.nullable("string"),
            "finished": oa.nullable("string"),
            "batches_done": _COUNT,
            "batches_total": {"oneOf": [_COUNT, {"type": "null"}]},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "sessions": {
                "type": "object",
                "description": "per phase (remove, add, replace): its session_id and start",
            },
            "counts": {
                "type": "object",
                "description": "segment, no_consent, suppressed, without_keys, invalid (per "
                "key and reason), eligible, to_add, to_remove, sent, platform_invalid, "
                "invalid_samples, errors",
            },
            "error": oa.nullable("string"),
        },
    },
}


def paths() -> dict[str, Any]:
    named = "/v1/syncs/{name}"
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    return {
        "/v1/syncs": {
            "get": oa.op(
                "The node's custom audience syncs",
                {**oa.list_ok("syncs", "Sync"), **oa.errors(*oa.AUTH)},
            ),
            "post": oa.op(
                "Save a sync (checked against the store and the integrations)",
                {**oa.ok("Sync", "created", 201), **oa.errors(400, 409, 413, 415, *oa.AUTH)},
            ),
        },
        named: {
            "parameters": [oa.NAME],
            "get": oa.op(
                "A sync and its latest job (with platform=true, the audience's size and "
                "status as the platform reports them)",
                {**oa.ok("Sync"), **oa.errors(400, 404, *oa.AUTH), **oa.GRAPH_ERRORS},
            ),
            "delete": oa.op(
                "Delete a sync and its history", {**oa.DELETED, **oa.errors(404, 409, *oa.AUTH)}
            ),
        },
        named + "/runs": {
            "parameters": [oa.NAME],
            "post": oa.op(
                "Queue a run (the open job instead, when one is queued or running)",
                {**oa.ok("SyncJob", "queued", 202), **oa.errors(400, 404, 413, 415, *oa.AUTH)},
            ),
            "get": oa.op(
                "The sync's jobs, newest first",
                {**oa.list_ok("runs", "SyncJob"), **oa.errors(404, *oa.AUTH)},
            ),
        },
        named + "/runs/{job_id}": {
            "parameters": [oa.NAME, job_id],
            "get": oa.op(
                "A job: status, progress and counts",
                {**oa.ok("SyncJob"), **oa.errors(404, *oa.AUTH)},
            ),
        },
        named + "/schedule": {
            "parameters": [oa.NAME],
            "put": oa.op(
                "Repeat the sync, from now (or stop)",
                {**oa.ok("Sync"), **oa.errors(400, 404, 413, 415, *oa.AUTH)},
            ),
        },
    }
