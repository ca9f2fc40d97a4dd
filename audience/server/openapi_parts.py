"""The pieces the OpenAPI document's modules build operations from: references,
error and success responses, the ``name`` path parameter.  Imported as a module
(``from audience.server import openapi_parts as oa``)."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
AUTH = (401, 403, 503)
BINARY = {"type": "string", "format": "binary"}
NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[^/]+$"},
}

_ERRORS = {
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


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str) -> dict[str, Any]:
    return {"type": [kind, "null"]}


def errors(*statuses: int) -> dict[str, Any]:
    return {
        str(s): {"description": _ERRORS[s], "content": {JSON: {"schema": ref("Error")}}}
        for s in statuses
    }


def ok(schema: str, description: str = "OK", status: int = 200) -> dict[str, Any]:
    return {str(status): {"description": description, "content": {JSON: {"schema": ref(schema)}}}}


def answer(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    """A 200 with an inline ``schema``."""
    return {"200": {"description": description, "content": {JSON: {"schema": schema}}}}


def op(summary: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    """An operation; its request body and query parameters come from the
    route's declaration (server/contract.py), merged in by ``openapi.document``."""
    return {"summary": summary, "responses": responses, **more}


def list_ok(key: str, item: str) -> dict[str, Any]:
    return answer(
        {
            "type": "object",
            "required": [key],
            "properties": {key: {"type": "array", "items": ref(item)}},
        }
    )


def one_key(key: str, description: str) -> dict[str, Any]:
    """A 200 whose body is ``{key: string}`` (what was deleted, disconnected)."""
    schema = {"type": "object", "required": [key], "properties": {key: {"type": "string"}}}
    return answer(schema, description)


DELETED = one_key("deleted", "deleted")


def saved(extra: dict[str, Any]) -> dict[str, Any]:
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


# the platform's errors, the same on every Meta endpoint (server/meta_graph.py)
GRAPH_ERRORS = {
    "502": {
        "description": "the Graph API did not answer (graph_unavailable) or answered an error "
        "(graph_error, its code in graph_code); nothing changed",
        "content": {JSON: {"schema": ref("Error")}},
    },
    "503": {
        "description": "the Graph API is rate limiting (graph_rate_limited, Retry-After), "
        "or the node is unavailable",
        "content": {JSON: {"schema": ref("Error")}},
    },
}
