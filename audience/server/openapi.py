"""``GET /openapi.json``: the OpenAPI 3.1 document of this server, built here
and only here (tests check it against the app's routes and fuzz the live
server with it)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from audience import __version__
from audience.runtime.delivery.model import STATUSES
from audience.server.bodies import ARROW_FILE, ARROW_STREAM
from audience.server.context import state

bp = Blueprint("openapi", __name__)

JSON = "application/json"
NDJSON = "application/x-ndjson"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


_DIAGNOSTIC: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "help": _nullable("string"),
        "line": {"type": "integer"},
        "column": {"type": "integer"},
        "end_line": {"type": "integer"},
        "end_column": {"type": "integer"},
        "field": _nullable("string"),
        "used_by": {
            "description": "what refers to a definition that cannot be deleted (409)",
            "type": "array",
            "items": {"type": "string"},
        },
    },
}

_REJECT = {
    "type": "object",
    "required": ["index", "field", "reason"],
    "properties": {
        "index": {"type": "integer", "minimum": 0},
        "field": _nullable("string"),
        "reason": {"type": "string"},
    },
}


def _schemas(max_limit: int) -> dict[str, Any]:
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": _ref("Diagnostic"),
                "errors": {"type": "array", "items": _ref("Diagnostic")},
            },
        },
        "Diagnostic": _DIAGNOSTIC,
        "AsOf": {
            "description": "ISO 8601 time (without an offset: the segment's time zone) "
            "or epoch milliseconds; default now",
            "oneOf": [{"type": "string", "maxLength": 64}, {"type": "integer"}, {"type": "null"}],
        },
        "EvaluateRequest": {
            "type": "object",
            "required": ["segment"],
            "additionalProperties": False,
            "properties": {
                "segment": {"type": "string", "description": "DSL text: a condition or a segment"},
                "as_of": _ref("AsOf"),
                "limit": {"type": "integer", "minimum": 0, "maximum": max_limit},
                "cursor": {
                    **_nullable("string"),
                    "maxLength": 1000,
                    "description": "the 'next' of a previous page: the same store version and "
                    "time (as_of is then ignored); 410 once that version is no longer kept",
                },
                "explain": {"type": "boolean"},
                "format": {"enum": ["json", "arrow"]},
            },
        },
        "Audience": {
            "type": "object",
            "required": ["count", "ids", "next", "as_of", "version", "explain"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "ids": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "contact ids in the store's contact order",
                },
                "next": {
                    **_nullable("string"),
                    "description": "cursor of the next page (null on the last page)",
                },
                "as_of": {"type": "string", "description": "the evaluation time used"},
                "version": {"type": "integer", "description": "the store version read"},
                "explain": _nullable("object"),
            },
        },
        "IngestResult": {
            "type": "object",
            "required": ["accepted", "rejected", "rejects"],
            "properties": {
                "accepted": {"type": "integer", "minimum": 0},
                "rejected": {"type": "integer", "minimum": 0},
                "duplicates": {"type": "integer", "minimum": 0},
                "rejects": {"type": "array", "items": _ref("Reject")},
                "triggers": _ref("TriggersFired"),
            },
        },
        "Reject": _REJECT,
        "Records": {
            "description": "records as JSON objects (or one object); events: id, contact_id, "
            "type, ts, context and the type's properties (top level or under 'properties'), "
            "profiles: contact_id and profile fields (docs/schema.md)",
            "oneOf": [{"type": "array", "items": {}}, {"type": "object"}],
        },
        "Profile": {
            "type": "object",
            "required": ["contact_id", "has_profile", "first_event", "profile", "version"],
            "properties": {
                "contact_id": {"type": "string"},
                "has_profile": {"type": "boolean"},
                "first_event": _nullable("string"),
                "profile": {"type": "object"},
                "version": {"type": "integer"},
            },
        },
        "ProfilePatch": {"type": "object", "description": "profile fields to set"},
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
        "SegmentCreate": {
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {
                "name": {
                    "type": "string",
                    "description": "default: the name of the text's segment definition",
                },
                "text": {"type": "string"},
            },
        },
        "SegmentReplace": _DSL_TEXT,
        "DslText": _DSL_TEXT,
        "Trigger": _saved(
            {
                "enabled": {"type": "boolean"},
                "valid_from": _nullable("string"),
                "valid_until": _nullable("string"),
            }
        ),
        "TriggerWrite": {
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {
                "text": {"type": "string", "description": "one trigger (and DND policies)"},
                "enabled": {"type": "boolean"},
                "valid_from": _ref("AsOf"),
                "valid_until": _ref("AsOf"),
            },
        },
        "Policy": _saved({}),
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
        "TemplateCreate": {
            "type": "object",
            "required": ["name", "subject", "html", "text"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}, **_PARTS},
        },
        "TemplateParts": {
            "type": "object",
            "required": ["subject", "html", "text"],
            "additionalProperties": False,
            "properties": _PARTS,
        },
        "Delivery": {
            "type": "object",
            "required": ["id", "contact_id", "status", "due", "source"],
            "properties": {
                "id": {"type": "integer"},
                "contact_id": {"type": "string"},
                "email": _nullable("string"),
                "channel": {"type": "string"},
                "kind": {"type": "string"},
                "status": {"enum": list(STATUSES)},
                "policy": _nullable("string"),
                "cap": _nullable("string"),
                "requested": {"type": "string"},
                "due": {"type": "string"},
                "sent": _nullable("string"),
                "test": {"type": "boolean"},
                "source": {"type": "string"},
                "attempts": {"type": "integer"},
                "last_error": _nullable("string"),
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
                "matched": {"type": "integer", "minimum": 0},
                "fired": {"type": "integer", "minimum": 0},
                "too_old": {
                    "type": "object",
                    "description": "per trigger: matching events dated before its valid-from "
                    "(they fire nothing)",
                    "additionalProperties": {"type": "integer"},
                },
                "note": {"type": "string", "description": "why old events fired nothing"},
                "firings": {"type": "array", "items": _ref("Firing")},
                "deliveries": {"type": "array", "items": _ref("Delivery")},
            },
        },
        **_PLAN_SCHEMAS,
    }


_DSL_TEXT = {
    "type": "object",
    "required": ["text"],
    "additionalProperties": False,
    "properties": {"text": {"type": "string", "description": "the definition as DSL text"}},
}
_PARTS = {p: {"type": "string"} for p in ("subject", "html", "text")}


def _saved(extra: dict[str, Any]) -> dict[str, Any]:
    """A saved DSL definition: name, text, version, times, and ``extra``."""
    return {
        "type": "object",
        "required": ["name", "text", "version", "created", "updated", *extra],
        "properties": {
            "name": {"type": "string"},
            "text": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "created": {"type": "string"},
            "updated": {"type": "string"},
            **extra,
        },
    }


def _errors(*statuses: int) -> dict[str, Any]:
    words = {
        400: "bad request (a rules text's errors with line and column, docs/http.md#errors)",
        401: "missing, unknown or revoked token",
        403: "the token's scope does not allow this",
        404: "not found (also: a path parameter that no route can match, e.g. with a newline)",
        405: "method not allowed",
        409: "already exists (on delete: in use by other definitions, listed in 'used_by')",
        410: "the cursor's store version is gone; evaluate again",
        413: "request body too large",
        415: "unsupported body kind",
        503: "the token's node cannot be opened",
    }
    return {
        str(s): {"description": words[s], "content": {JSON: {"schema": _ref("Error")}}}
        for s in statuses
    }


def _ok(schema: str, description: str = "OK", status: int = 200) -> dict[str, Any]:
    return {str(status): {"description": description, "content": {JSON: {"schema": _ref(schema)}}}}


def _json_body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": _ref(schema)}}}


_AUTH = (401, 403, 503)
_BINARY = {"type": "string", "format": "binary"}
_RECORDS_BODY = {
    "required": True,
    "content": {
        JSON: {"schema": _ref("Records")},
        NDJSON: {"schema": {"type": "string"}},
        ARROW_STREAM: {"schema": _BINARY},
        ARROW_FILE: {"schema": _BINARY},
    },
}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[^/]+$"},
}


def _op(summary: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **more}


def _list_ok(key: str, item: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": _ref(item)}},
    }
    return {"200": {"description": "OK", "content": {JSON: {"schema": schema}}}}


_DELETED = {
    "200": {
        "description": "deleted",
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "required": ["deleted"],
                    "properties": {"deleted": {"type": "string"}},
                }
            }
        },
    }
}


def _crud(
    base: str,
    word: str,
    key: str,
    item: str,
    create: str,
    replace: str,
    delete_errors: tuple[int, ...] = (404,),
) -> dict[str, Any]:
    """list + create at ``base``, get + replace + delete at ``base/{name}``."""
    return {
        base: {
            "get": _op(f"Every saved {word}", {**_list_ok(key, item), **_errors(*_AUTH)}),
            "post": _op(
                f"Save a new {word} (checked first)",
                {**_ok(item, "created", 201), **_errors(400, 409, 413, 415, *_AUTH)},
                requestBody=_json_body(create),
            ),
        },
        base + "/{name}": {
            "parameters": [_NAME],
            "get": _op(f"A saved {word}", {**_ok(item), **_errors(404, *_AUTH)}),
            "put": _op(
                f"Replace (or create) a saved {word}",
                {
                    **_ok(item, "replaced"),
                    **_ok(item, "created", 201),
                    **_errors(400, 404, 413, 415, *_AUTH),
                },
                requestBody=_json_body(replace),
            ),
            "delete": _op(
                f"Delete a saved {word}", {**_DELETED, **_errors(*delete_errors, *_AUTH)}
            ),
        },
    }


def document(max_limit: int = 100_000) -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    # imported here: that module builds on this one's helpers
    from audience.server.openapi_journeys import JOURNEY_SCHEMAS, journey_paths
    from audience.server.openapi_meta import SYNC_SCHEMAS, sync_paths
    from audience.server.openapi_meta_leads import LEADFORM_SCHEMAS, leadform_paths

    evaluate_responses = {
        "200": {
            "description": "the audience: a page of ids (JSON) or every id (Arrow IPC stream)",
            "content": {JSON: {"schema": _ref("Audience")}, ARROW_STREAM: {"schema": _BINARY}},
        },
        **_errors(400, 410, 413, 415, *_AUTH),
    }
    paths: dict[str, Any] = {
        "/healthz": {
            "get": _op(
                "Liveness",
                {
                    "200": {
                        "description": "up",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["status"],
                                    "properties": {"status": {"const": "ok"}},
                                }
                            }
                        },
                    }
                },
                security=[],
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document",
                {
                    "200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {}}}},
                },
                security=[],
            )
        },
        "/v1/evaluate": {
            "post": _op(
                "Evaluate a segment given as DSL text",
                evaluate_responses,
                requestBody=_json_body("EvaluateRequest"),
            )
        },
        "/v1/events": {
            "post": _op(
                "Ingest events (JSON array, NDJSON or Arrow IPC)",
                {**_ok("IngestResult"), **_errors(400, 413, 415, *_AUTH)},
                requestBody=_RECORDS_BODY,
            )
        },
        "/v1/profiles": {
            "post": _op(
                "Upsert profiles (JSON array, NDJSON or Arrow IPC)",
                {**_ok("IngestResult"), **_errors(400, 413, 415, *_AUTH)},
                requestBody=_RECORDS_BODY,
            )
        },
        "/v1/profiles/{contact_id}": {
            "parameters": [
                {
                    "name": "contact_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
            ],
            "get": _op("A contact's profile", {**_ok("Profile"), **_errors(404, *_AUTH)}),
            "patch": _op(
                "Set some fields of a profile (creates the contact when new)",
                {**_ok("Profile"), **_errors(400, 404, 413, 415, *_AUTH)},
                requestBody=_json_body("ProfilePatch"),
            ),
        },
        **_crud(
            "/v1/segments",
            "segment",
            "segments",
            "Segment",
            "SegmentCreate",
            "SegmentReplace",
            delete_errors=(404, 409),  # 409: other segments or triggers use it
        ),
        **_crud("/v1/triggers", "trigger", "triggers", "Trigger", "TriggerWrite", "TriggerWrite"),
        **_crud("/v1/dnd-policies", "DND policy", "policies", "Policy", "DslText", "DslText"),
        **_crud(
            "/v1/templates", "template", "templates", "Template", "TemplateCreate", "TemplateParts"
        ),
        "/v1/deliveries": {
            "get": _op(
                "The node's deliveries, latest 'limit' in the order recorded",
                {**_list_ok("deliveries", "Delivery"), **_errors(400, *_AUTH)},
                parameters=[
                    {"name": "contact", "in": "query", "schema": {"type": "string"}},
                    {"name": "status", "in": "query", "schema": {"enum": list(STATUSES)}},
                    {
                        "name": "since",
                        "in": "query",
                        "description": "due at or after: ISO 8601 or epoch ms",
                        "schema": {"type": "string", "maxLength": 64},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10_000},
                    },
                ],
            )
        },
        "/v1/segments/{name}/audience": {
            "parameters": [_NAME],
            "get": _op(
                "The audience of a saved segment (paged as /v1/evaluate)",
                {"200": evaluate_responses["200"], **_errors(400, 404, 410, *_AUTH)},
                parameters=[
                    {"name": "as_of", "in": "query", "schema": {"type": "string", "maxLength": 64}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": max_limit},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    {"name": "explain", "in": "query", "schema": {"type": "boolean"}},
                ],
            ),
        },
        **_plan_paths(),
        **journey_paths(),
        **sync_paths(),
        **_tracking_paths(),
        **_report_paths(),
        **leadform_paths(),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "audience",
            "version": __version__,
            "description": "Segments as DSL text evaluated over a node's events and profiles. "
            "Every endpoint but /healthz and /openapi.json needs "
            "'Authorization: Bearer <token>'; a token belongs to one node. "
            "Errors are JSON: {'error': {code, message, help, ...}}.",
        },
        "components": {
            "schemas": {
                **_schemas(max_limit),
                **JOURNEY_SCHEMAS,
                **SYNC_SCHEMAS,
                **LEADFORM_SCHEMAS,
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


# ---------------------------------------------------------------------------- plans
# Plans and the deliveries they send (server/plans.py): kept together here.

_RUN_STATES = ["running", "done", "missed", "merged", "failed"]
_COUNTS = {"type": "object", "additionalProperties": True}
_PLAN_SCHEMAS: dict[str, Any] = {
    "PlanInfo": {
        "type": "object",
        "required": ["name", "node", "state", "version", "text", "created", "updated"],
        "properties": {
            "name": {"type": "string"},
            "node": {"type": "string"},
            "state": {"enum": ["draft", "ready"]},
            "version": {"type": "integer", "minimum": 1},
            "text": {"type": "string"},
            "schedule": _nullable("string"),
            "next_occurrence": _nullable("string"),
            "last_run": {"oneOf": [_ref("PlanRun"), {"type": "null"}]},
            "created": {"type": "string"},
            "updated": {"type": "string"},
        },
    },
    "PlanRun": {
        "type": "object",
        "required": ["id", "plan", "occurrence_ms", "state", "counts"],
        "properties": {
            "id": {"type": "integer"},
            "node": {"type": "string"},
            "plan": {"type": "string"},
            "occurrence_ms": {"type": "integer"},
            "version": {"type": "integer"},
            "delivery_version": _nullable("integer"),
            "state": {"enum": _RUN_STATES},
            "started_ms": _nullable("integer"),
            "finished_ms": _nullable("integer"),
            "total": _nullable("integer"),
            "counts": _COUNTS,
            "note": _nullable("string"),
        },
    },
    "SavedDelivery": _saved({}),
    "PlansSaved": {
        "type": "object",
        "required": ["deliveries", "plans"],
        "properties": {
            "deliveries": {"type": "array", "items": _ref("SavedDelivery")},
            "plans": {"type": "array", "items": _ref("PlanInfo")},
        },
    },
    "DeliveriesSaved": {
        "type": "object",
        "required": ["deliveries"],
        "properties": {"deliveries": {"type": "array", "items": _ref("SavedDelivery")}},
    },
    "PlanPreview": {
        "type": "object",
        "required": ["plan", "at", "at_ms", "audience", "without_email", "held", "to_send"],
        "properties": {
            "plan": {"type": "string"},
            "state": {"type": "string"},
            "at": {"type": "string", "format": "date-time"},
            "at_ms": {"type": "integer"},
            "audience": {"type": "integer", "minimum": 0},
            "without_email": {"type": "integer", "minimum": 0},
            "held": {"type": "integer", "minimum": 0},
            "held_by_cap": _COUNTS,
            "to_send": {"type": "integer", "minimum": 0},
            "samples": {"type": "object"},
        },
    },
    "TestSendRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"contact": {"type": "string", "description": "the sample contact"}},
    },
    "TestSent": {
        "type": "object",
        "required": ["sent"],
        "properties": {"sent": {"type": "array", "items": {"type": "object"}}},
    },
}


def _plan_paths() -> dict[str, Any]:
    named = "/v1/plans/{name}"
    return {
        "/v1/plans": {
            "get": _op(
                "Every plan of the node", {**_list_ok("plans", "PlanInfo"), **_errors(*_AUTH)}
            ),
            "post": _op(
                "Save the delivery and plan blocks of a text (a new plan is a draft)",
                {**_ok("PlansSaved"), **_errors(400, 404, 409, 413, 415, *_AUTH)},
                requestBody=_json_body("DslText"),
            ),
        },
        named: {
            "parameters": [_NAME],
            "get": _op("A plan", {**_ok("PlanInfo"), **_errors(404, *_AUTH)}),
            "delete": _op(
                "Delete a plan (its runs stay)", {**_DELETED, **_errors(404, 409, *_AUTH)}
            ),
        },
        named + "/ready": {
            "parameters": [_NAME],
            "post": _op(
                "Check a plan and make it ready",
                {**_ok("PlanInfo"), **_errors(400, 404, 409, *_AUTH)},
            ),
        },
        named + "/draft": {
            "parameters": [_NAME],
            "post": _op(
                "Make a plan a draft", {**_ok("PlanInfo"), **_errors(400, 404, 409, *_AUTH)}
            ),
        },
        named + "/runs": {
            "parameters": [_NAME],
            "get": _op(
                "The runs of a plan", {**_list_ok("runs", "PlanRun"), **_errors(404, *_AUTH)}
            ),
        },
        named + "/preview": {
            "parameters": [_NAME],
            "get": _op(
                "Who the plan would reach at an instant (writes nothing)",
                {**_ok("PlanPreview"), **_errors(400, 404, *_AUTH)},
                parameters=[
                    {
                        "name": "at",
                        "in": "query",
                        "description": "ISO 8601 or epoch ms; default: the next occurrence",
                        "schema": {"type": "string", "maxLength": 64},
                    }
                ],
            ),
        },
        "/v1/messages": {
            "get": _op(
                "Every delivery (message) plans can send",
                {**_list_ok("deliveries", "SavedDelivery"), **_errors(*_AUTH)},
            ),
            "post": _op(
                "Save the delivery blocks of a text",
                {**_ok("DeliveriesSaved"), **_errors(400, 413, 415, *_AUTH)},
                requestBody=_json_body("DslText"),
            ),
        },
        "/v1/messages/{name}": {
            "parameters": [_NAME],
            "get": _op("A delivery", {**_ok("SavedDelivery"), **_errors(404, *_AUTH)}),
            "delete": _op(
                "Delete a delivery no plan sends", {**_DELETED, **_errors(404, 409, *_AUTH)}
            ),
        },
        "/v1/messages/{name}/test": {
            "parameters": [_NAME],
            "post": _op(
                "Send a delivery to its test list now (marked test, never counted by DND)",
                {**_ok("TestSent"), **_errors(400, 404, 413, 415, *_AUTH)},
                requestBody=_json_body("TestSendRequest"),
            ),
        },
    }


# ---------------------------------------------------------------------------- tracking
# The links of sent messages (server/tracking.py): no token, no JSON.

_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "a signed token from a sent message",
    "schema": {"type": "string", "pattern": "^[^/]+$"},
}
_TRACKING_404 = {
    "404": {
        "description": "a forged, altered or unknown token: nothing recorded, no redirect",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}
_HTML_PAGE = {"content": {"text/html": {"schema": {"type": "string"}}}}


def _report_paths() -> dict[str, Any]:
    from audience.runtime.report.params import METRICS

    params = [
        {"name": "top", "in": "query", "schema": {"enum": [10, 100]}},
        {
            "name": "domain",
            "in": "query",
            "description": "a domain to show (repeatable; instead of top)",
            "schema": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
            "style": "form",
            "explode": True,
        },
        {"name": "by", "in": "query", "schema": {"enum": ["day", "week", "month"]}},
        {"name": "months", "in": "query", "schema": {"enum": [3, 6, 12]}},
        {"name": "mail_group", "in": "query", "schema": {"type": "string", "minLength": 1}},
        {
            "name": "metric",
            "in": "query",
            "schema": {"type": "array", "items": {"enum": list(METRICS)}},
            "style": "form",
            "explode": True,
        },
        {
            "name": "as_of",
            "in": "query",
            "description": "ISO 8601 or epoch ms; default now",
            "schema": {"type": "string", "maxLength": 64},
        },
        {"name": "tz", "in": "query", "schema": {"type": "string"}},
    ]
    report = {
        "type": "object",
        "required": ["as_of", "by", "months", "periods", "domains", "rows", "anomalies"],
        "properties": {
            "as_of": {"type": "string"},
            "by": {"type": "string"},
            "months": {"type": "integer"},
            "periods": {"type": "array", "items": {"type": "object"}},
            "domains": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "object"}},
            "anomalies": {"type": "array", "items": {"type": "object"}},
        },
    }
    return {
        "/v1/reports/domains": {
            "get": _op(
                "The trend for recipient domains: rates per domain and period, anomalies",
                {
                    "200": {"description": "OK", "content": {JSON: {"schema": report}}},
                    **_errors(400, *_AUTH),
                },
                parameters=params,
            )
        },
        "/v1/reports/domains.html": {
            "get": _op(
                "The same report as a self-contained HTML dashboard",
                {"200": {"description": "the page", **_HTML_PAGE}, **_errors(400, *_AUTH)},
                parameters=params,
            )
        },
    }


def _tracking_paths() -> dict[str, Any]:
    return {
        "/t/c/{token}": {
            "parameters": [_TOKEN],
            "get": _op(
                "A click: redirect to the link as sent, record email_clicked",
                {"302": {"description": "to the link"}, **_TRACKING_404},
                security=[],
            ),
        },
        "/t/o/{token}": {
            "parameters": [_TOKEN],
            "get": _op(
                "An open: a 1x1 GIF, record email_opened",
                {
                    "200": {
                        "description": "the pixel",
                        "content": {"image/gif": {"schema": _BINARY}},
                    },
                    **_TRACKING_404,
                },
                security=[],
            ),
        },
        "/t/u/{token}": {
            "parameters": [_TOKEN],
            "get": _op(
                "The unsubscribe page (records nothing)",
                {"200": {"description": "a page with a button", **_HTML_PAGE}, **_TRACKING_404},
                security=[],
            ),
            "post": _op(
                "Unsubscribe (RFC 8058 one-click): the address gets no more marketing email",
                {"200": {"description": "the confirmation page", **_HTML_PAGE}, **_TRACKING_404},
                security=[],
                requestBody={
                    "required": False,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "properties": {"List-Unsubscribe": {"const": "One-Click"}},
                            }
                        }
                    },
                },
            ),
        },
    }


# served without a token: a client discovers the API (and how to authenticate) first
@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document(state().config.max_limit))
