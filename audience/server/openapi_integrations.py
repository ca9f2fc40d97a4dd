"""The Meta integrations' part of the OpenAPI document (server/integrations.py):
their schemas and paths, which ``openapi.document`` merges in."""

from __future__ import annotations

from typing import Any

from audience.server.openapi import (
    _AUTH,
    _DELETED,
    _NAME,
    JSON,
    _errors,
    _json_body,
    _list_ok,
    _nullable,
    _ok,
    _op,
    _ref,
)

_TIME = _nullable("string")
_URL = {**_nullable("string"), "maxLength": 4000, "description": "http(s) URL; null clears it"}
_DAYS = {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 365}}

INTEGRATION_SCHEMAS: dict[str, Any] = {
    "Integration": {
        "type": "object",
        "required": ["name", "platform", "account_id", "token", "status", "ends", "scopes"],
        "properties": {
            "name": {"type": "string"},
            "platform": {"const": "meta"},
            "account_id": {"type": "string", "description": "digits, without act_"},
            "token": {"type": "string", "description": "masked: never the whole token"},
            "status": {"enum": ["active", "expiring", "inactive"]},
            "ends": {**_TIME, "description": "when calls start failing (null: never)"},
            "expires": _TIME,
            "data_access_expires": _TIME,
            "refused": {**_nullable("string"), "description": "why the platform refused it"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "user_id": _nullable("string"),
            "connected": _TIME,
            "checked": _TIME,
            "reminder_url": _nullable("string"),
            "reminder": {"oneOf": [_ref("IntegrationReminder"), {"type": "null"}]},
            "reminder_delivery": {
                **_nullable("integer"),
                "description": "check: the webhook delivery carrying the reminder now due",
            },
        },
    },
    "IntegrationConnect": {
        "type": "object",
        "required": ["name", "account_id", "token"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "maxLength": 200},
            "account_id": {"type": "string", "maxLength": 64, "description": "act_N or N"},
            "token": {"type": "string", "maxLength": 4096},
            "reminder_url": _URL,
        },
    },
    "IntegrationChange": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"reminder_url": _URL},
    },
    "IntegrationToken": {
        "type": "object",
        "required": ["token"],
        "additionalProperties": False,
        "properties": {"token": {"type": "string", "maxLength": 4096}},
    },
    "IntegrationReminder": {
        "type": "object",
        "required": ["integration", "status", "reminder", "message"],
        "properties": {
            "type": {"const": "integration_reminder"},
            "platform": {"const": "meta"},
            "integration": {"type": "string"},
            "account_id": {"type": "string"},
            "status": {"enum": ["active", "expiring", "inactive"]},
            "reminder": {"type": "string", "description": "the threshold: 7d, 1d, ... or inactive"},
            "ends": _TIME,
            "days_left": _nullable("integer"),
            "message": {"type": "string"},
            "at": {"type": "string"},
            "url": {**_nullable("string"), "description": "where its webhook goes (null: none)"},
        },
    },
    "ReminderWebhook": {
        "type": "object",
        "required": ["url", "days"],
        "properties": {"url": _nullable("string"), "days": _DAYS},
    },
    "ReminderWebhookWrite": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"url": _URL, "days": {**_DAYS, "minItems": 1}},
    },
}

# the platform's errors, the same on every Meta endpoint (server/meta_graph.py)
GRAPH_ERRORS = {
    "502": {
        "description": "the Graph API did not answer (graph_unavailable) or answered an error "
        "(graph_error, its code in graph_code); nothing changed",
        "content": {JSON: {"schema": _ref("Error")}},
    },
    "503": {
        "description": "the Graph API is rate limiting (graph_rate_limited, Retry-After), "
        "or the node is unavailable",
        "content": {JSON: {"schema": _ref("Error")}},
    },
}


def integration_paths() -> dict[str, Any]:
    named = "/v1/integrations/{name}"

    def call(summary: str, body: str | None, *statuses: int) -> dict[str, Any]:
        more = {} if body is None else {"requestBody": _json_body(body)}
        responses = {**_ok("Integration"), **_errors(*statuses, *_AUTH), **GRAPH_ERRORS}
        return {"parameters": [_NAME], "post": _op(summary, responses, **more)}

    webhook = {
        "type": "object",
        "required": ["webhook"],
        "properties": {"webhook": _ref("ReminderWebhook")},
    }
    listed = {
        "type": "object",
        "required": ["reminders", "webhook"],
        "properties": {
            "reminders": {"type": "array", "items": _ref("IntegrationReminder")},
            "webhook": _ref("ReminderWebhook"),
        },
    }
    return {
        "/v1/integrations": {
            "get": _op(
                "The store's ads accounts (Meta) and their token status",
                {**_list_ok("integrations", "Integration"), **_errors(*_AUTH)},
            ),
            "post": _op(
                "Connect an ads account with an access token (checked with the platform first)",
                {
                    **_ok("Integration", "connected", 201),
                    **_errors(400, 409, 413, 415, *_AUTH),
                    **GRAPH_ERRORS,
                },
                requestBody=_json_body("IntegrationConnect"),
            ),
        },
        named: {
            "parameters": [_NAME],
            "get": _op("An integration", {**_ok("Integration"), **_errors(404, *_AUTH)}),
            "patch": _op(
                "Set where its reminders are posted",
                {**_ok("Integration"), **_errors(400, 404, 413, 415, *_AUTH)},
                requestBody=_json_body("IntegrationChange"),
            ),
            "delete": _op(
                "Forget an integration and its token", {**_DELETED, **_errors(404, *_AUTH)}
            ),
        },
        named + "/check": call(
            "Ask the platform whether the token is valid, record it, raise a reminder due",
            None,
            404,
        ),
        named + "/reauthorize": call(
            "Give it a new token (a short-lived one is exchanged for a long-lived one)",
            "IntegrationToken",
            400,
            404,
            413,
            415,
        ),
        "/v1/integration-reminders": {
            "get": _op(
                "The reminders due now and the store's reminder webhook",
                {
                    "200": {"description": "OK", "content": {JSON: {"schema": listed}}},
                    **_errors(*_AUTH),
                },
            ),
            "put": _op(
                "Set the store's reminder webhook and the days before expiry it is told",
                {
                    "200": {"description": "OK", "content": {JSON: {"schema": webhook}}},
                    **_errors(400, 413, 415, *_AUTH),
                },
                requestBody=_json_body("ReminderWebhookWrite"),
            ),
        },
    }
