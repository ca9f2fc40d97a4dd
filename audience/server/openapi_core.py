"""The core of the OpenAPI document: evaluation, ingest, profiles, saved
definitions and the delivery log; their answers' schemas and operations
(request bodies and query parameters come from the routes' declarations)."""

from __future__ import annotations

from typing import Any

from audience.runtime.delivery.model import STATUSES
from audience.server import openapi_parts as oa
from audience.server.bodies import ARROW_STREAM

_DIAGNOSTIC: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "help": oa.nullable("string"),
        "line": {"type": "integer"},
        "column": {"type": "integer"},
        "end_line": {"type": "integer"},
        "end_column": {"type": "integer"},
        "field": oa.nullable("string"),
        "used_by": {
            "description": "what refers to a definition that cannot be deleted (409)",
            "type": "array",
            "items": {"type": "string"},
        },
    },
}
_COUNT = {"type": "integer", "minimum": 0}
_PARTS = {p: {"type": "string"} for p in ("subject", "html", "text")}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": oa.ref("Diagnostic"),
            "errors": {"type": "array", "items": oa.ref("Diagnostic")},
        },
    },
    "Diagnostic": _DIAGNOSTIC,
    "Audience": {
        "type": "object",
        "required": ["count", "ids", "next", "as_of", "version", "explain"],
        "properties": {
            "count": _COUNT,
            "ids": {
                "type": "array",
                "items": {"type": "string"},
                "description": "contact ids in the store's contact order",
            },
            "next": {
                **oa.nullable("string"),
                "description": "cursor of the next page (null on the last page)",
            },
            "as_of": {"type": "string", "description": "the evaluation time used"},
            "version": {"type": "integer", "description": "the store version read"},
            "explain": oa.nullable("object"),
        },
    },
    "IngestResult": {
        "type": "object",
        "required": ["accepted", "rejected", "rejects"],
        "properties": {
            "accepted": _COUNT,
            "rejected": _COUNT,
            "duplicates": _COUNT,
            "rejects": {"type": "array", "items": oa.ref("Reject")},
            "triggers": oa.ref("TriggersFired"),
        },
    },
    "Reject": {
        "type": "object",
        "required": ["index", "field", "reason"],
        "properties": {
            "index": _COUNT,
            "field": oa.nullable("string"),
            "reason": {"type": "string"},
        },
    },
    "Profile": {
        "type": "object",
        "required": ["contact_id", "has_profile", "first_event", "profile", "version"],
        "properties": {
            "contact_id": {"type": "string"},
            "has_profile": {"type": "boolean"},
            "first_event": oa.nullable("string"),
            "profile": {"type": "object"},
            "version": {"type": "integer"},
        },
    },
    "Segment": {
        "type": "object",
        "required": ["name", "text", "created", "updated", "version"],
        "properties": {
            "name": {"type": "string"},
            "text": {"type": "string"},
            "created": {"type": "string"},
            "updated": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
        },
    },
    "Trigger": oa.saved(
        {
            "enabled": {"type": "boolean"},
            "valid_from": oa.nullable("string"),
            "valid_until": oa.nullable("string"),
        }
    ),
    "Policy": oa.saved({}),
    "Template": {
        "type": "object",
        "required": ["name", "subject", "html", "text", "version", "created", "updated"],
        "properties": {
            "name": {"type": "string"},
            **_PARTS,
            "version": {"type": "integer", "minimum": 1},
            "created": {"type": "string"},
            "updated": {"type": "string"},
        },
    },
    "Delivery": {
        "type": "object",
        "required": ["id", "contact_id", "status", "due", "source"],
        "properties": {
            "id": {"type": "integer"},
            "contact_id": {"type": "string"},
            "email": oa.nullable("string"),
            "channel": {"type": "string"},
            "kind": {"type": "string"},
            "status": {"enum": list(STATUSES)},
            "policy": oa.nullable("string"),
            "cap": oa.nullable("string"),
            "requested": {"type": "string"},
            "due": {"type": "string"},
            "sent": oa.nullable("string"),
            "test": {"type": "boolean"},
            "source": {"type": "string"},
            "attempts": {"type": "integer"},
            "last_error": oa.nullable("string"),
            "payload": {"type": "object"},
        },
    },
    "Firing": {
        "type": "object",
        "required": ["trigger", "contact_id", "event", "ts"],
        "properties": {
            "trigger": {"type": "string"},
            "contact_id": {"type": "string"},
            "event": {"type": "string", "description": "the event's id or content key"},
            "ts": {"type": "string"},
            "outcome": {"type": "array", "description": "one entry per action"},
        },
    },
    "TriggersFired": {
        "type": "object",
        "required": ["matched", "fired", "firings", "deliveries"],
        "properties": {
            "matched": _COUNT,
            "fired": _COUNT,
            "too_old": {
                "type": "object",
                "description": "per trigger: matching events dated before its valid-from "
                "(they fire nothing)",
                "additionalProperties": {"type": "integer"},
            },
            "note": {"type": "string", "description": "why old events fired nothing"},
            "firings": {"type": "array", "items": oa.ref("Firing")},
            "deliveries": {"type": "array", "items": oa.ref("Delivery")},
        },
    },
}


def _crud(
    base: str, word: str, key: str, item: str, delete_errors: tuple[int, ...] = (404,)
) -> dict[str, Any]:
    """list + create at ``base``, get + replace + delete at ``base/{name}``."""
    return {
        base: {
            "get": oa.op(f"Every saved {word}", {**oa.list_ok(key, item), **oa.errors(*oa.AUTH)}),
            "post": oa.op(
                f"Save a new {word} (checked first)",
                {**oa.ok(item, "created", 201), **oa.errors(400, 409, 413, 415, *oa.AUTH)},
            ),
        },
        base + "/{name}": {
            "parameters": [oa.NAME],
            "get": oa.op(f"A saved {word}", {**oa.ok(item), **oa.errors(404, *oa.AUTH)}),
            "put": oa.op(
                f"Replace (or create) a saved {word}",
                {
                    **oa.ok(item, "replaced"),
                    **oa.ok(item, "created", 201),
                    **oa.errors(400, 404, 413, 415, *oa.AUTH),
                },
            ),
            "delete": oa.op(
                f"Delete a saved {word}", {**oa.DELETED, **oa.errors(*delete_errors, *oa.AUTH)}
            ),
        },
    }


def paths() -> dict[str, Any]:
    audience = {
        "description": "the audience: a page of ids (JSON) or every id (Arrow IPC stream)",
        "content": {oa.JSON: {"schema": oa.ref("Audience")}, ARROW_STREAM: {"schema": oa.BINARY}},
    }
    ingest = {**oa.ok("IngestResult"), **oa.errors(400, 413, 415, *oa.AUTH)}
    status = {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}
    return {
        "/healthz": {"get": oa.op("Liveness", oa.answer(status, "up"), security=[])},
        "/openapi.json": {
            "get": oa.op("This document", oa.answer({}, "OpenAPI 3.1"), security=[]),
        },
        "/v1/evaluate": {
            "post": oa.op(
                "Evaluate a segment given as DSL text",
                {"200": audience, **oa.errors(400, 410, 413, 415, *oa.AUTH)},
            )
        },
        "/v1/events": {
            "post": oa.op("Ingest events (JSON array, NDJSON or Arrow IPC)", ingest),
        },
        "/v1/profiles": {
            "post": oa.op("Upsert profiles (JSON array, NDJSON or Arrow IPC)", ingest),
        },
        "/v1/profiles/{contact_id}": {
            "parameters": [
                {"name": "contact_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": oa.op("A contact's profile", {**oa.ok("Profile"), **oa.errors(404, *oa.AUTH)}),
            "patch": oa.op(
                "Set some fields of a profile (creates the contact when new)",
                {**oa.ok("Profile"), **oa.errors(400, 404, 413, 415, *oa.AUTH)},
            ),
        },
        # 409 on delete: other segments or triggers use it
        **_crud("/v1/segments", "segment", "segments", "Segment", (404, 409)),
        **_crud("/v1/triggers", "trigger", "triggers", "Trigger"),
        **_crud("/v1/dnd-policies", "DND policy", "policies", "Policy"),
        **_crud("/v1/templates", "template", "templates", "Template"),
        "/v1/deliveries": {
            "get": oa.op(
                "The node's deliveries, latest 'limit' in the order recorded",
                {**oa.list_ok("deliveries", "Delivery"), **oa.errors(400, *oa.AUTH)},
            )
        },
        "/v1/segments/{name}/audience": {
            "parameters": [oa.NAME],
            "get": oa.op(
                "The audience of a saved segment (paged as /v1/evaluate)",
                {"200": audience, **oa.errors(400, 404, 410, *oa.AUTH)},
            ),
        },
    }
