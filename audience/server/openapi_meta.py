"""The custom audience syncs' part of the OpenAPI document (server/meta_syncs.py):
their schemas and paths, which ``openapi.document`` merges in."""

from __future__ import annotations

from typing import Any

from audience.integrations.meta.sync.definitions import JOB_STATES, SOURCES
from audience.server.openapi import (
    _AUTH,
    _DELETED,
    _NAME,
    _errors,
    _json_body,
    _list_ok,
    _nullable,
    _ok,
    _op,
    _ref,
)

_COUNT = {"type": "integer", "minimum": 0}
_SHORT = {"type": "string", "maxLength": 200}

SYNC_SCHEMAS: dict[str, Any] = {
    "SyncWrite": {
        "type": "object",
        "required": ["name", "segment", "integration"],
        "additionalProperties": False,
        "properties": {
            "name": {**_SHORT, "minLength": 1},
            "segment": {"type": "string", "description": "a saved segment's name, or a condition"},
            "integration": {**_SHORT, "description": "the connected ads account"},
            "email_field": {**_SHORT, "description": "a string profile field holding emails"},
            "phone_field": {**_SHORT, "description": "a string profile field holding phones"},
            "consent_field": {**_SHORT, "description": "a bool profile field: true = consent"},
            "audience_id": {**_SHORT, "description": "an existing custom audience (digits)"},
            "audience_name": {**_SHORT, "description": "a custom audience to create"},
            "customer_file_source": {"enum": list(SOURCES)},
            "country_code": {**_SHORT, "description": "for phones written without one"},
            "schedule": {**_SHORT, "description": "'every N hours' or 'every N days'"},
        },
    },
    "Sync": {
        "type": "object",
        "required": ["name", "node", "segment", "integration", "match_keys"],
        "properties": {
            "name": {"type": "string"},
            "node": {"type": "string"},
            "segment": {"type": "string"},
            "integration": {"type": "string"},
            "match_keys": {"type": "array", "items": {"enum": ["email", "phone"]}},
            "email_field": _nullable("string"),
            "phone_field": _nullable("string"),
            "consent_field": _nullable("string"),
            "country_code": {"type": "string"},
            "audience_id": _nullable("string"),
            "audience_name": _nullable("string"),
            "customer_file_source": _nullable("string"),
            "schedule": _nullable("string"),
            "next_due": _nullable("string"),
            "last_job": {"oneOf": [_ref("SyncJob"), {"type": "null"}]},
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
            "created": _nullable("string"),
            "started": _nullable("string"),
            "finished": _nullable("string"),
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
            "error": _nullable("string"),
        },
    },
    "SyncRun": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"replace": {"type": "boolean", "description": "a full replace"}},
    },
    "SyncSchedule": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "every": {
                "oneOf": [_SHORT, {"type": "null"}],
                "description": "'every N hours' or 'every N days'; null stops repeating",
            }
        },
    },
}


def sync_paths() -> dict[str, Any]:
    named = "/v1/syncs/{name}"
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    return {
        "/v1/syncs": {
            "get": _op(
                "The node's custom audience syncs", {**_list_ok("syncs", "Sync"), **_errors(*_AUTH)}
            ),
            "post": _op(
                "Save a sync (checked against the store and the integrations)",
                {**_ok("Sync", "created", 201), **_errors(400, 409, 413, 415, *_AUTH)},
                requestBody=_json_body("SyncWrite"),
            ),
        },
        named: {
            "parameters": [_NAME],
            "get": _op("A sync and its latest job", {**_ok("Sync"), **_errors(404, *_AUTH)}),
            "delete": _op(
                "Delete a sync and its history", {**_DELETED, **_errors(404, 409, *_AUTH)}
            ),
        },
        named + "/runs": {
            "parameters": [_NAME],
            "post": _op(
                "Queue a run (the open job instead, when one is queued or running)",
                {**_ok("SyncJob", "queued", 202), **_errors(400, 404, 413, 415, *_AUTH)},
                requestBody={"required": False, "content": _json_body("SyncRun")["content"]},
            ),
            "get": _op(
                "The sync's jobs, newest first",
                {**_list_ok("runs", "SyncJob"), **_errors(404, *_AUTH)},
            ),
        },
        named + "/runs/{job_id}": {
            "parameters": [_NAME, job_id],
            "get": _op(
                "A job: status, progress and counts", {**_ok("SyncJob"), **_errors(404, *_AUTH)}
            ),
        },
        named + "/schedule": {
            "parameters": [_NAME],
            "put": _op(
                "Repeat the sync, from now (or stop)",
                {**_ok("Sync"), **_errors(400, 404, 413, 415, *_AUTH)},
                requestBody=_json_body("SyncSchedule"),
            ),
        },
    }
