"""The lead forms' part of the OpenAPI document (server/meta_leads.py and the
public webhook of server/meta_webhooks.py), merged in by ``openapi.document``."""

from __future__ import annotations

from typing import Any

from audience.server.openapi import (
    _AUTH,
    JSON,
    _errors,
    _json_body,
    _list_ok,
    _nullable,
    _ok,
    _op,
    _ref,
)
from audience.server.openapi_integrations import GRAPH_ERRORS

_COUNT = {"type": "integer", "minimum": 0}
_METADATA = ["ad_id", "adgroup_id", "form_id", "page_id", "leadgen_id", "created_time"]
_LEAD_STATES = ["pending", "done", "unrouted", "failed"]
_FORM_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[^/]+$"},
}
_FIELD_MAP = {
    "type": "object",
    "required": ["field", "to"],
    "properties": {
        "field": {"type": "string", "description": "the form's field (question) key"},
        "to": {"type": "string", "description": "a profile field of the node's schema"},
        "required": {"type": "boolean", "description": "leads lacking it are still stored"},
    },
}

LEADFORM_SCHEMAS: dict[str, Any] = {
    "LeadForm": {
        "type": "object",
        "required": ["name", "node", "integration", "page_id", "form_id", "mapping", "source"],
        "properties": {
            "name": {"type": "string"},
            "node": {"type": "string"},
            "integration": {"type": "string"},
            "page_id": {"type": "string"},
            "form_id": {"type": "string"},
            "mapping": {"type": "array", "items": _FIELD_MAP},
            "metadata": {"type": "array", "items": {"enum": _METADATA}},
            "source": {"type": "string", "description": "the tag stored on each lead"},
            "source_field": _nullable("string"),
            "match_field": _nullable("string"),
            "watermark": {
                "type": "integer",
                "description": "unix seconds: the backfill fetches leads created after it",
            },
            "leads": {
                "type": "object",
                "description": "leads by state (pending, done, unrouted, failed), and the "
                "stored ones with unmapped or missing fields (with_unmapped, with_missing)",
                "additionalProperties": _COUNT,
            },
        },
    },
    "LeadFormConnect": {
        "type": "object",
        "required": ["name", "integration", "page_id", "form_id", "source"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "integration": {"type": "string", "description": "whose token reads the leads"},
            "page_id": {"type": "string", "pattern": "^[0-9]+$"},
            "form_id": {"type": "string", "pattern": "^[0-9]+$"},
            "mapping": {
                "description": "form field to profile field: a list, or an object field -> to",
                "oneOf": [
                    {"type": "array", "items": _FIELD_MAP},
                    {"type": "object", "additionalProperties": {"type": "string"}},
                ],
            },
            "metadata": {"type": "array", "items": {"enum": _METADATA}},
            "source": {"type": "string"},
            "source_field": _nullable("string"),
            "match_field": {
                **_nullable("string"),
                "description": "the profile field an existing contact is found by (default email)",
            },
            "since": {"type": "integer", "minimum": 0, "description": "unix seconds"},
        },
    },
    "LeadBackfill": {
        "type": "object",
        "required": ["form", "fetched", "new", "duplicates", "stored", "watermark"],
        "properties": {
            "form": {"type": "string"},
            "fetched": _COUNT,
            "new": _COUNT,
            "duplicates": _COUNT,
            "stored": _COUNT,
            "watermark": {"type": "integer"},
        },
    },
    "Lead": {
        "type": "object",
        "required": ["leadgen_id", "state", "via"],
        "properties": {
            "leadgen_id": {"type": "string"},
            "form_id": _nullable("string"),
            "state": {"enum": _LEAD_STATES},
            "via": {"enum": ["webhook", "backfill"]},
            "form": _nullable("string"),
            "contact_id": _nullable("string"),
            "created_time": _nullable("string"),
            "received_ms": {"type": "integer"},
            "done_ms": _nullable("integer"),
            "attempts": _COUNT,
            "last_error": _nullable("string"),
            "unmapped": {"type": "object", "description": "answers not stored, by form field"},
            "missing": {"type": "array", "items": {"type": "string"}},
        },
    },
    "LeadNotificationAnswer": {
        "type": "object",
        "required": ["received", "new"],
        "properties": {"received": _COUNT, "new": _COUNT},
    },
}


def leadform_paths() -> dict[str, Any]:
    base = "/v1/leadforms"
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        base: {
            "get": _op(
                "The node's connected lead forms",
                {**_list_ok("leadforms", "LeadForm"), **_errors(*_AUTH)},
            ),
            "post": _op(
                "Connect a lead form (its mapping checked against the node's schema)",
                {**_ok("LeadForm", "connected", 201), **_errors(400, 409, 413, 415, *_AUTH)},
                requestBody=_json_body("LeadFormConnect"),
            ),
        },
        base + "/{name}": {
            "parameters": [_FORM_NAME],
            "get": _op(
                "A lead form with its leads counted", {**_ok("LeadForm"), **_errors(404, *_AUTH)}
            ),
            "delete": _op(
                "Disconnect a lead form (stored leads stay)",
                {
                    "200": {
                        "description": "disconnected",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["disconnected"],
                                    "properties": {"disconnected": {"type": "string"}},
                                }
                            }
                        },
                    },
                    **_errors(404, *_AUTH),
                },
            ),
        },
        base + "/{name}/backfill": {
            "parameters": [_FORM_NAME],
            "post": _op(
                "Fetch and store the leads created since the form's watermark",
                {**_ok("LeadBackfill"), **_errors(400, 404, *_AUTH), **GRAPH_ERRORS},
            ),
        },
        base + "/{name}/leads": {
            "parameters": [_FORM_NAME],
            "get": _op(
                "The form's most recent leads, newest first",
                {**_list_ok("leads", "Lead"), **_errors(400, 404, *_AUTH)},
                parameters=[
                    {"name": "state", "in": "query", "schema": {"enum": _LEAD_STATES}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10_000},
                    },
                ],
            ),
        },
        "/hooks/meta": {
            "get": _op(
                "The webhook subscription handshake: echo hub.challenge for our verify token",
                {
                    "200": {"description": "the challenge", "content": text},
                    "403": {"description": "not our verify token", "content": text},
                },
                security=[],
                parameters=[
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("hub.mode", "hub.challenge", "hub.verify_token")
                ],
            ),
            "post": _op(
                "A leadgen notification signed with X-Hub-Signature-256: its leads are "
                "kept (once each) and stored by the worker",
                {
                    **_ok("LeadNotificationAnswer", "kept"),
                    "400": {
                        "description": "signed, but not a notification",
                        "content": {JSON: {"schema": _ref("Error")}},
                    },
                    "403": {
                        "description": "missing or wrong signature, or no app secret "
                        "configured: nothing kept",
                        "content": {JSON: {"schema": _ref("Error")}},
                    },
                },
                security=[],
                parameters=[
                    {
                        "name": "X-Hub-Signature-256",
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "sha256= + hex HMAC-SHA256(app secret, raw body)",
                    }
                ],
                requestBody={"required": True, "content": {JSON: {"schema": {"type": "object"}}}},
            ),
        },
    }
