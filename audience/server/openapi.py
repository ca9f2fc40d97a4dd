"""``GET /openapi.json``: the OpenAPI 3.1 document of this server, built here
and only here (tests check it against the app's routes and fuzz the live
server with it)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from audience import __version__
from audience.server.bodies import ARROW_FILE, ARROW_STREAM
from audience.server.context import requires, state

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
                "cursor": {**_nullable("string"), "maxLength": 1000},
                "explain": {"type": "boolean"},
                "format": {"enum": ["json", "arrow"]},
            },
        },
        "Audience": {
            "type": "object",
            "required": ["count", "ids", "next", "as_of", "version", "explain"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "ids": {"type": "array", "items": {"type": "string"}},
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
            },
        },
        "Reject": _REJECT,
        "Records": {
            "description": "records as JSON objects (or one object); "
            "events: SPEC section 8, profiles: contact_id and profile fields",
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
        "SegmentReplace": {
            "type": "object",
            "required": ["text"],
            "additionalProperties": False,
            "properties": {"text": {"type": "string"}},
        },
    }


def _errors(*statuses: int) -> dict[str, Any]:
    words = {
        400: "bad request (DSL errors as SPEC section 7)",
        401: "missing, unknown or revoked token",
        403: "the token's scope does not allow this",
        404: "not found (also: a path parameter that no route can match, e.g. with a newline)",
        405: "method not allowed",
        409: "already exists",
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


def document(max_limit: int = 100_000) -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
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
                    **_errors(*_AUTH),
                },
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
        "/v1/segments": {
            "get": _op(
                "Saved segments",
                {
                    "200": {
                        "description": "OK",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["segments"],
                                    "properties": {
                                        "segments": {"type": "array", "items": _ref("Segment")}
                                    },
                                }
                            }
                        },
                    },
                    **_errors(*_AUTH),
                },
            ),
            "post": _op(
                "Save a new segment (checked and compiled first)",
                {**_ok("Segment", "created", 201), **_errors(400, 409, 413, 415, *_AUTH)},
                requestBody=_json_body("SegmentCreate"),
            ),
        },
        "/v1/segments/{name}": {
            "parameters": [_NAME],
            "get": _op("A saved segment", {**_ok("Segment"), **_errors(404, *_AUTH)}),
            "put": _op(
                "Replace (or create) a saved segment",
                {
                    **_ok("Segment", "replaced"),
                    **_ok("Segment", "created", 201),
                    **_errors(400, 404, 413, 415, *_AUTH),
                },
                requestBody=_json_body("SegmentReplace"),
            ),
            "delete": _op(
                "Delete a saved segment",
                {
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
                    },
                    **_errors(404, *_AUTH),
                },
            ),
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
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "audience",
            "version": __version__,
            "description": "Segments as DSL text evaluated over a node's events and profiles. "
            "Every endpoint but /healthz needs 'Authorization: Bearer <token>'; a token "
            "belongs to one node. Errors are JSON: {'error': {code, message, help, ...}}.",
        },
        "components": {
            "schemas": _schemas(max_limit),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


@bp.get("/openapi.json")
@requires("read")
def openapi_json() -> Response:
    return jsonify(document(state().config.max_limit))
