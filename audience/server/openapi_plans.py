"""Plans and the deliveries they send (server/plans.py): their part of the
OpenAPI document."""

from __future__ import annotations

from typing import Any

from audience.server import openapi_parts as oa

_RUN_STATES = ["running", "done", "missed", "merged", "failed"]
_COUNTS = {"type": "object", "additionalProperties": True}
SCHEMAS: dict[str, Any] = {
    "PlanInfo": {
        "type": "object",
        "required": ["name", "node", "state", "version", "text", "created", "updated"],
        "properties": {
            "name": {"type": "string"},
            "node": {"type": "string"},
            "state": {"enum": ["draft", "ready"]},
            "version": {"type": "integer", "minimum": 1},
            "text": {"type": "string"},
            "schedule": oa.nullable("string"),
            "next_occurrence": oa.nullable("string"),
            "last_run": {"oneOf": [oa.ref("PlanRun"), {"type": "null"}]},
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
            "delivery_version": oa.nullable("integer"),
            "state": {"enum": _RUN_STATES},
            "started_ms": oa.nullable("integer"),
            "finished_ms": oa.nullable("integer"),
            "total": oa.nullable("integer"),
            "counts": _COUNTS,
            "note": oa.nullable("string"),
        },
    },
    "SavedDelivery": oa.saved({}),
    "PlansSaved": {
        "type": "object",
        "required": ["deliveries", "plans"],
        "properties": {
            "deliveries": {"type": "array", "items": oa.ref("SavedDelivery")},
            "plans": {"type": "array", "items": oa.ref("PlanInfo")},
        },
    },
    "DeliveriesSaved": {
        "type": "object",
        "required": ["deliveries"],
        "properties": {"deliveries": {"type": "array", "items": oa.ref("SavedDelivery")}},
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
    "TestSent": {
        "type": "object",
        "required": ["sent"],
        "properties": {"sent": {"type": "array", "items": {"type": "object"}}},
    },
}


def paths() -> dict[str, Any]:
    named = "/v1/plans/{name}"
    return {
        "/v1/plans": {
            "get": oa.op(
                "Every plan of the node", {**oa.list_ok("plans", "PlanInfo"), **oa.errors(*oa.AUTH)}
            ),
            "post": oa.op(
                "Save the delivery and plan blocks of a text (a new plan is a draft)",
                {**oa.ok("PlansSaved"), **oa.errors(400, 404, 409, 413, 415, *oa.AUTH)},
            ),
        },
        named: {
            "parameters": [oa.NAME],
            "get": oa.op("A plan", {**oa.ok("PlanInfo"), **oa.errors(404, *oa.AUTH)}),
            "delete": oa.op(
                "Delete a plan (its runs stay)", {**oa.DELETED, **oa.errors(404, 409, *oa.AUTH)}
            ),
        },
        named + "/ready": {
            "parameters": [oa.NAME],
            "post": oa.op(
                "Check a plan and make it ready",
                {**oa.ok("PlanInfo"), **oa.errors(400, 404, 409, *oa.AUTH)},
            ),
        },
        named + "/draft": {
            "parameters": [oa.NAME],
            "post": oa.op(
                "Make a plan a draft", {**oa.ok("PlanInfo"), **oa.errors(400, 404, 409, *oa.AUTH)}
            ),
        },
        named + "/runs": {
            "parameters": [oa.NAME],
            "get": oa.op(
                "The runs of a plan", {**oa.list_ok("runs", "PlanRun"), **oa.errors(404, *oa.AUTH)}
            ),
        },
        named + "/preview": {
            "parameters": [oa.NAME],
            "get": oa.op(
                "Who the plan would reach at an instant (writes nothing)",
                {**oa.ok("PlanPreview"), **oa.errors(400, 404, *oa.AUTH)},
            ),
        },
        "/v1/messages": {
            "get": oa.op(
                "Every delivery (message) plans can send",
                {**oa.list_ok("deliveries", "SavedDelivery"), **oa.errors(*oa.AUTH)},
            ),
            "post": oa.op(
                "Save the delivery blocks of a text",
                {**oa.ok("DeliveriesSaved"), **oa.errors(400, 413, 415, *oa.AUTH)},
            ),
        },
        "/v1/messages/{name}": {
            "parameters": [oa.NAME],
            "get": oa.op("A delivery", {**oa.ok("SavedDelivery"), **oa.errors(404, *oa.AUTH)}),
            "delete": oa.op(
                "Delete a delivery no plan sends", {**oa.DELETED, **oa.errors(404, 409, *oa.AUTH)}
            ),
        },
        "/v1/messages/{name}/test": {
            "parameters": [oa.NAME],
            "post": oa.op(
                "Send a delivery to its test list now (marked test, never counted by DND)",
                {**oa.ok("TestSent"), **oa.errors(400, 404, 413, 415, *oa.AUTH)},
            ),
        },
    }
