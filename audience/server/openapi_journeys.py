"""The journeys' part of the OpenAPI document (server/journeys.py): their
schemas and paths, which ``openapi.document`` merges in."""

from __future__ import annotations

from typing import Any

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

_STATES = ["draft", "live", "paused", "ended"]
_COUNT = {"type": "integer", "minimum": 0}
_TIME = {"type": "string", "description": "ISO 8601 or epoch ms", "maxLength": 64}

JOURNEY_SCHEMAS: dict[str, Any] = {
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
            "live_at": _nullable("string"),
            "steps": {"type": "array", "items": _ref("JourneyStep")},
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
            "label": _nullable("string"),
            "entered": _COUNT,
            "waiting": _COUNT,
            "done": _COUNT,
        },
    },
    "JourneysSaved": {
        "type": "object",
        "required": ["journeys"],
        "properties": {"journeys": {"type": "array", "items": _ref("JourneyInfo")}},
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
            "wake_at": _nullable("string"),
            "entered": {"type": "string"},
            "finished": _nullable("string"),
            "cause": {"type": "string", "description": "what entered it"},
        },
    },
    "JourneyPosition": {
        "type": "object",
        "required": ["journey", "contact_id", "runs"],
        "properties": {
            "journey": {"type": "string"},
            "contact_id": {"type": "string"},
            "runs": {"type": "array", "items": _ref("JourneyRun")},
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
                "items": _ref("JourneyStepLog"),
                "description": "the step log of the contact's runs, oldest first",
            },
            "next": {**_nullable("integer"), "description": "offset of the next page"},
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
            "steps": {"type": "array", "items": _ref("JourneyStep")},
            "sends_per_day": {
                "type": "object",
                "description": "per day (UTC), per delivery status",
                "additionalProperties": {"type": "object", "additionalProperties": _COUNT},
            },
            "dnd_suppressed": {"type": "object", "additionalProperties": _COUNT},
            "branches": {"type": "array", "items": {"type": "object"}},
            "contact": _nullable("string"),
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
            "delivery_key": _nullable("string"),
        },
    },
    "JourneyEntered": {
        "type": "object",
        "required": ["journey", "contact_id", "entered", "why_not", "run"],
        "properties": {
            "journey": {"type": "string"},
            "contact_id": {"type": "string"},
            "entered": {"type": "boolean"},
            "why_not": _nullable("string"),
            "run": {"oneOf": [_ref("JourneyRun"), {"type": "null"}]},
        },
    },
}


def journey_paths() -> dict[str, Any]:
    named = "/v1/journeys/{name}"
    contact = {"name": "contact_id", "in": "path", "required": True, "schema": {"type": "string"}}

    def change(summary: str) -> dict[str, Any]:
        return {
            "parameters": [_NAME],
            "post": _op(summary, {**_ok("JourneyInfo"), **_errors(400, 404, 409, *_AUTH)}),
        }

    return {
        "/v1/journeys": {
            "get": _op(
                "Every journey of the node",
                {**_list_ok("journeys", "JourneyInfo"), **_errors(*_AUTH)},
            ),
            "post": _op(
                "Save the journey blocks of a text (a new journey is a draft; editing a live "
                "one makes a new version)",
                {**_ok("JourneysSaved"), **_errors(400, 409, 413, 415, *_AUTH)},
                requestBody=_json_body("DslText"),
            ),
        },
        named: {
            "parameters": [_NAME],
            "get": _op("A journey", {**_ok("JourneyInfo"), **_errors(404, *_AUTH)}),
            "delete": _op(
                "Delete a draft or ended journey", {**_DELETED, **_errors(404, 409, *_AUTH)}
            ),
        },
        named + "/live": change("Make a journey live"),
        named + "/pause": change("Pause a live journey"),
        named + "/end": change("End a journey"),
        named + "/steps": {
            "parameters": [_NAME],
            "get": _op(
                "How many contacts each step has seen",
                {**_list_ok("steps", "JourneyStep"), **_errors(404, *_AUTH)},
            ),
        },
        named + "/dry-run": {
            "parameters": [_NAME],
            "get": _op(
                "Replay the journey over a past span of stored events, at most 366 days "
                "(writes nothing)",
                {**_ok("JourneyDryRun"), **_errors(400, 404, *_AUTH)},
                parameters=[
                    {"name": "since", "in": "query", "required": True, "schema": _TIME},
                    {"name": "until", "in": "query", "required": True, "schema": _TIME},
                    {"name": "contact", "in": "query", "schema": {"type": "string"}},
                ],
            ),
        },
        named + "/contacts/{contact_id}": {
            "parameters": [_NAME, contact],
            "get": _op(
                "Where a contact stands: each of their entries and its step",
                {**_ok("JourneyPosition"), **_errors(404, *_AUTH)},
            ),
        },
        named + "/contacts/{contact_id}/history": {
            "parameters": [_NAME, contact],
            "get": _op(
                "The steps a contact went through, oldest first",
                {**_ok("JourneyHistory"), **_errors(400, 404, *_AUTH)},
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10_000},
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**31},
                    },
                ],
            ),
        },
        named + "/contacts/{contact_id}/enter": {
            "parameters": [_NAME, contact],
            "post": _op(
                "Put a contact into a live journey now (its re-entry rule applies)",
                {**_ok("JourneyEntered"), **_errors(400, 404, 409, *_AUTH)},
            ),
        },
    }
