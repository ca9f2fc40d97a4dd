"""The Meta integrations' part of the OpenAPI document (server/integrations.py):
their schemas and paths, which ``openapi.document`` merges in."""

from __future__ import annotations

from typing import Any

from audience.server import openapi_parts as oa

_TIME = oa.nullable("string")
_URL = {**oa.nullable("string"), "maxLength": 4000, "description": "http(s) URL; null clears it"}
_DAYS = {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 365}}

SCHEMAS: dict[str, Any] = {
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
            "refused": {**oa.nullable("string"), "description": "why the platform refused it"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "user_id": oa.nullable("string"),
            "connected": _TIME,
            "checked": _TIME,
            "reminder_url": oa.nullable("string"),
            "reminder": {"oneOf": [oa.ref("IntegrationReminder"), {"type": "null"}]},
            "reminder_delivery": {
                **oa.nullable("integer"),
                "description": "check: the webhook delivery carrying the reminder now due",
            },
        },
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
            "days_left": oa.nullable("integer"),
            "message": {"type": "string"},
            "at": {"type": "string"},
            "url": {**oa.nullable("string"), "description": "where its webhook goes (null: none)"},
        },
    },
    "ReminderWebhook": {
        "type": "object",
        "required": ["url", "days"],
        "properties": {"url": oa.nullable("string"), "days": _DAYS},
    },
}


def paths() -> dict[str, Any]:
    named = "/v1/integrations/{name}"

    def call(summary: str, *statuses: int) -> dict[str, Any]:
        responses = {**oa.ok("Integration"), **oa.errors(*statuses, *oa.AUTH), **oa.GRAPH_ERRORS}
        return {"parameters": [oa.NAME], "post": oa.op(summary, responses)}

    webhook = {
        "type": "object",
        "required": ["webhook"],
        "properties": {"webhook": oa.ref("ReminderWebhook")},
    }
    listed = {
        "type": "object",
        "required": ["reminders", "webhook"],
        "properties": {
            "reminders": {"type": "array", "items": oa.ref("IntegrationReminder")},
            "webhook": oa.ref("ReminderWebhook"),
        },
    }
    return {
        "/v1/integrations": {
            "get": oa.op(
                "The store's ads accounts (Meta) and their token status",
                {**oa.list_ok("integrations", "Integration"), **oa.errors(*oa.AUTH)},
            ),
            "post": oa.op(
                "Connect an ads account with an access token (checked with the platform first)",
                {
                    **oa.ok("Integration", "connected", 201),
                    **oa.errors(400, 409, 413, 415, *oa.AUTH),
                    **oa.GRAPH_ERRORS,
                },
            ),
        },
        named: {
            "parameters": [oa.NAME],
            "get": oa.op("An integration", {**oa.ok("Integration"), **oa.errors(404, *oa.AUTH)}),
            "patch": oa.op(
                "Set where its reminders are posted",
                {**oa.ok("Integration"), **oa.errors(400, 404, 413, 415, *oa.AUTH)},
            ),
            "delete": oa.op(
                "Forget an integration and its token", {**oa.DELETED, **oa.errors(404, *oa.AUTH)}
            ),
        },
        named + "/check": call(
            "Ask the platform whether the token is valid, record it, raise a reminder due",
            404,
        ),
        named + "/reauthorize": call(
            "Give it a new token (a short-lived one is exchanged for a long-lived one)",
            400,
            404,
            413,
            415,
        ),
        "/v1/integration-reminders": {
            "get": oa.op(
                "The reminders due now and the store's reminder webhook",
                {
                    "200": {"description": "OK", "content": {oa.JSON: {"schema": listed}}},
                    **oa.errors(*oa.AUTH),
                },
            ),
            "put": oa.op(
                "Set the store's reminder webhook and the days before expiry it is told",
                {
                    "200": {"description": "OK", "content": {oa.JSON: {"schema": webhook}}},
                    **oa.errors(400, 413, 415, *oa.AUTH),
                },
            ),
        },
    }
