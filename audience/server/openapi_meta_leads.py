"""The lead forms' part of the OpenAPI document (server/meta_leads.py and the
public webhook of server/meta_webhooks.py), merged in by ``openapi.document``."""

from __future__ import annotations

from typing import Any

from audience.integrations.meta.leads.inbox import STATES
from audience.integrations.meta.leads.mapping import METADATA
from audience.server import openapi_parts as oa
from audience.server.meta_leads import FIELD_MAP

_COUNT = {"type": "integer", "minimum": 0}
_METADATA = list(METADATA)
_LEAD_STATES = list(STATES)

SCHEMAS: dict[str, Any] = {
    "LeadForm": {
        "type": "object",
        "required": ["name", "node", "integration", "page_id", "form_id", "mapping", "source"],
        "properties": {
            "name": {"type": "string"},
            "node": {"type": "string"},
            "integration": {"type": "string"},
            "page_id": {"type": "string"},
            "form_id": {"type": "string"},
            "mapping": {"type": "array", "items": FIELD_MAP},
            "metadata": {"type": "array", "items": {"enum": _METADATA}},
            "source": {"type": "string", "description": "the tag stored on each lead"},
            "source_field": oa.nullable("string"),
            "match_field": oa.nullable("string"),
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
            "form_id": oa.nullable("string"),
            "state": {"enum": _LEAD_STATES},
            "via": {"enum": ["webhook", "backfill"]},
            "form": oa.nullable("string"),
            "contact_id": oa.nullable("string"),
            "created_time": oa.nullable("string"),
            "received_ms": {"type": "integer"},
            "done_ms": oa.nullable("integer"),
            "attempts": _COUNT,
            "last_error": oa.nullable("string"),
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


def paths() -> dict[str, Any]:
    base = "/v1/leadforms"
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        base: {
            "get": oa.op(
                "The node's connected lead forms",
                {**oa.list_ok("leadforms", "LeadForm"), **oa.errors(*oa.AUTH)},
            ),
            "post": oa.op(
                "Connect a lead form (its mapping checked against the node's schema)",
                {**oa.ok("LeadForm", "connected", 201), **oa.errors(400, 409, 413, 415, *oa.AUTH)},
            ),
        },
        base + "/{name}": {
            "parameters": [oa.NAME],
            "get": oa.op(
                "A lead form with its leads counted",
                {**oa.ok("LeadForm"), **oa.errors(404, *oa.AUTH)},
            ),
            "delete": oa.op(
                "Disconnect a lead form (stored leads stay)",
                {**oa.one_key("disconnected", "disconnected"), **oa.errors(404, *oa.AUTH)},
            ),
        },
        base + "/{name}/backfill": {
            "parameters": [oa.NAME],
            "post": oa.op(
                "Fetch and store the leads created since the form's watermark",
                {**oa.ok("LeadBackfill"), **oa.errors(400, 404, *oa.AUTH), **oa.GRAPH_ERRORS},
            ),
        },
        base + "/{name}/leads": {
            "parameters": [oa.NAME],
            "get": oa.op(
                "The form's most recent leads, newest first",
                {**oa.list_ok("leads", "Lead"), **oa.errors(400, 404, *oa.AUTH)},
            ),
        },
        "/hooks/meta": {
            "get": oa.op(
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
            "post": oa.op(
                "A leadgen notification signed with X-Hub-Signature-256: its leads are "
                "kept (once each) and stored by the worker",
                {
                    **oa.ok("LeadNotificationAnswer", "kept"),
                    "400": {
                        "description": "signed, but not a notification",
                        "content": {oa.JSON: {"schema": oa.ref("Error")}},
                    },
                    "403": {
                        "description": "missing or wrong signature, or no app secret "
                        "configured: nothing kept",
                        "content": {oa.JSON: {"schema": oa.ref("Error")}},
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
            ),
        },
    }
