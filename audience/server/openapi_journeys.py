"""The journeys' part of the OpenAPI document (server/journeys.py): their
schemas and paths, which ``openapi.document`` merges in."""

from __future__ import annotations

from typing import Any

from audience.server import openapi_parts as oa

_STATES = ["draft", "live", "paused", "ended"]
_COUNT = {"type": "integer", "minimum": 0}
_TIME = {"type": "string", "description": "ISO 8601 or epoch ms", "maxLength": 64}

SCHEMAS: dict[str, Any] = {
    "JourneyInfo": {
        "type": "object",
        "required": ["name", "state", "version", "versions", "text", "steps", "runs"],
        "properties": {
            "name": {"type": "string"},
            "state": {"enum": _STATES},
            "version": {"type": "integer", "minimum": 1, "description": "the current version"},
            "versions": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1},
                "description": "every version kept (contacts may still be on older ones)",
            },
            "text": {"type": "string"},
            "live_at": oa.nullable("string"),
            "steps": {"type": "array", "items": oa.ref("JourneyStep")},
            "runs": {
                "type": "object",
                "description": "how many runs are in each state (waiting, done, stopped)",
                "additionalProperties": _COUNT,
            },
            "created": {"type": "string"},
            "updated": {"type": "string"},
        },
    },
    "JourneyStep": {
        "type": "object",
        "required": ["step", "kind", "entered", "waiting", "done"],
        "properties": {
            "step": {"type": "string", "description": "the step's id: its path, e.g. 1.yes.0"},
            "kind": {"enum": ["action", "wait", "check", "end"]},
            "label": oa.nullable("string"),
            "entered": _COUNT,
            "waiting": _COUNT,
            "done": _COUNT,
        },
    },
    "JourneysSaved": {
        "type": "object",
        "required": ["journeys"],
        "properties": {"journeys": {"type": "array", "items": oa.ref("JourneyInfo")}},
    },
    "JourneyRun": {
        "type": "object",
        "required": ["version", "entry", "state", "step", "entered"],
        "properties": {
            "version": {"type": "integer", "minimum": 1},
            "entry": {"type": "integer", "minimum": 1},
            "state": {"type": "string", "description": "waiting, done, stopped or failed"},
            "step": {"type": "string", "description": "the step id it is at (or ended at)"},
            "since": {"type": "string", "description": "when it reached that step"},
            "waits_for": {
                "oneOf": [{"enum": ["time", "signal", "cond"]}, {"type": "null"}],
                "description": "a waiting run: the time, a click or open, or a condition",
            },
            "wake_at": oa.nullable("string"),
            "entered": {"type": "string"},
            "finished": oa.nullable("string"),
            "cause": {"type": "string", "description": "what entered it"},
        },
    },
    "JourneyPosition": {
        "type": "object",
        "required": ["journey", "contact_id", "runs"],
        "properties": {
            "journey": {"type": "string"},
            "contact_id": {"type": "string"},
            "runs": {"type": "array", "items": oa.ref("JourneyRun")},
        },
    },
    "JourneyHistory": {
        "type": "object",
        "required": ["journey", "contact_id", "history", "next"],
        "properties": {
            "journey": {"type": "string"},
            "contact_id": {"type": "string"},
            "history": {
                "type": "array",
                "items": oa.ref("JourneyStepLog"),
                "description": "the step log of the contact's runs, oldest first",
            },
            "next": {**oa.nullable("integer"), "description": "offset of the next page"},
        },
    },
    "JourneyDryRun": {
        "type": "object",
        "description": "per-step counts, sends per day, DND holds and the branches taken "
        "and why (with 'contact': that contact's step log too)",
        "required": ["journey", "version", "since", "until", "entered", "steps"],
        "properties": {
            "journey": {"type": "string"},
            "version": {"type": "integer"},
            "since": {"type": "string"},
            "until": {"type": "string"},
            "events": _COUNT,
            "entered": _COUNT,
            "not_entered": {"type": "object", "additionalProperties": _COUNT},
            "steps": {"type": "array", "items": oa.ref("JourneyStep")},
            "sends_per_day": {
                "type": "object",
                "description": "per day (UTC), per delivery status",
                "additionalProperties": {"type": "object", "additionalProperties": _COUNT},
            },
            "dnd_suppressed": {"type": "object", "additionalProperties": _COUNT},
            "branches": {"type": "array", "items": {"type": "object"}},
            "contact": oa.nullable("string"),
            "history": {"type": "array", "items": {"type": "object"}},
        },
    },
    "JourneyStepLog": {
        "type": "object",
        "required": ["entry", "version", "step", "kind", "at", "outcome"],
        "properties": {
            "entry": {"type": "integer", "minimum": 1},
            "version": {"type": "integer", "minimum": 1},
            "step": {"type": "string"},
            "seq": {"type": "integer"},
            "kind": {
                "type": "string",
                "description": "entered, action, wait, waited, check, yes, no, end, stopped",
            },
            "at": {"type": "string"},
            "outcome": {"type": "object", "description": "why, until, deadline or a delivery"},
            "delivery_key": oa.nullable("string"),
        },
    },
    "JourneyEntered": {
        "type": "object",
        "required": ["journey", "contact_id", "entered", "why_not", "run"],
        "properties": {
            "journey": {"type": "string"},
            "contact_id": {"type": "string"},
            "entered": {"type": "boolean"},
            "why_not": oa.nullable("string"),
            "run": {"oneOf": [oa.ref("JourneyRun"), {"type": "null"}]},
        },
    },
}


def paths() -> dict[str, Any]:
    named = "/v1/journeys/{name}"
    contact = {"name": "contact_id", "in": "path", "required": True, "schema": {"type": "string"}}

    def change(summary: str) -> dict[str, Any]:
        return {
            "parameters": [oa.NAME],
            "post": oa.op(summary, {**oa.ok("JourneyInfo"), **oa.errors(400, 404, 409, *oa.AUTH)}),
        }

    return {
        "/v1/journeys": {
            "get": oa.op(
                "Every journey of the node",
                {**oa.list_ok("journeys", "JourneyInfo"), **oa.errors(*oa.AUTH)},
            ),
            "post": oa.op(
                "Save the journey blocks of a text (a new journey is a draft; editing a live "
                "one makes a new version)",
                {**oa.ok("JourneysSaved"), **oa.errors(400, 409, 413, 415, *oa.AUTH)},
            ),
        },
        named: {
            "parameters": [oa.NAME],
            "get": oa.op("A journey", {**oa.ok("JourneyInfo"), **oa.errors(404, *oa.AUTH)}),
            "delete": oa.op(
                "Delete a draft or ended journey", {**oa.DELETED, **oa.errors(404, 409, *oa.AUTH)}
            ),
        },
        named + "/live": change("Make a journey live"),
        named + "/pause": change("Pause a live journey"),
        named + "/end": change("End a journey"),
        named + "/steps": {
            "parameters": [oa.NAME],
            "get": oa.op(
                "How many contacts each step has seen",
                {**oa.list_ok("steps", "JourneyStep"), **oa.errors(404, *oa.AUTH)},
            ),
        },
        named + "/dry-run": {
            "parameters": [oa.NAME],
            "get": oa.op(
                "Replay the journey over a past span of stored events, at most 366 days "
                "(writes nothing)",
                {**oa.ok("JourneyDryRun"), **oa.errors(400, 404, *oa.AUTH)},
            ),
        },
        named + "/contacts/{contact_id}": {
            "parameters": [oa.NAME, contact],
            "get": oa.op(
                "Where a contact stands: each of their entries and its step",
                {**oa.ok("JourneyPosition"), **oa.errors(404, *oa.AUTH)},
            ),
        },
        named + "/contacts/{contact_id}/history": {
            "parameters": [oa.NAME, contact],
            "get": oa.op(
                "The steps a contact went through, oldest first",
                {**oa.ok("JourneyHistory"), **oa.errors(400, 404, *oa.AUTH)},
            ),
        },
        named + "/contacts/{contact_id}/enter": {
            "parameters": [oa.NAME, contact],
            "post": oa.op(
                "Put a contact into a live journey now (its re-entry rule applies)",
                {**oa.ok("JourneyEntered"), **oa.errors(400, 404, 409, *oa.AUTH)},
            ),
        },
    }
