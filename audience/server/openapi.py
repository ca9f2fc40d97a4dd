"""``GET /openapi.json``: the OpenAPI 3.1 document of this server.

Each part of the API documents its operations and answers in its own module
(``SECTIONS``: ``SCHEMAS`` and ``paths()``); what a route takes, its request body
and query parameters, is not written there but read from the route's own
declaration (``@accepts``, server/contract.py), the one its handler checks
requests with.  Tests check the document against the app's routes and fuzz
the live server with it.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint, Flask, Response, jsonify

from audience import __version__
from audience.server import (
    openapi_core,
    openapi_integrations,
    openapi_journeys,
    openapi_meta,
    openapi_meta_leads,
    openapi_plans,
    openapi_tracking,
)
from audience.server import openapi_parts as oa
from audience.server.context import ServerConfig, state
from audience.server.contract import Body, Contract, Limits, contract_of, limits_of

bp = Blueprint("openapi", __name__)

SECTIONS = (
    openapi_core,
    openapi_plans,
    openapi_journeys,
    openapi_meta,
    openapi_tracking,
    openapi_integrations,
    openapi_meta_leads,
)


@functools.cache
def contracts() -> dict[tuple[str, str], Contract]:
    """Every route as (OpenAPI path, lower-case method) with what it takes,
    from the blueprints' views (an app without a store: only its routes)."""
    from audience.server.app import BLUEPRINTS

    app = Flask("audience.routes")
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)
    out = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<path:", "{").replace("<", "{").replace(">", "}")
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                out[(path, method.lower())] = contract_of(app.view_functions[rule.endpoint])
    return out


def document(config: ServerConfig | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document (bounds from ``config``, else the defaults)."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for section in SECTIONS:
        schemas |= section.SCHEMAS
        paths |= section.paths()
    _declared(paths, schemas, limits_of(config))
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
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _declared(paths: dict[str, Any], schemas: dict[str, Any], limits: Limits) -> None:
    """Each operation's request body and query parameters, from its route."""
    for (path, method), contract in contracts().items():
        op = paths.get(path, {}).get(method)
        if op is None:
            continue  # an undocumented route: the tests name it
        body, query = contract.body, contract.query
        if isinstance(body, Body):
            published = body.schema(limits)
            if schemas.setdefault(body.name, published) != published:
                raise ValueError(f"two request bodies are named {body.name}")
            content = {oa.JSON: {"schema": oa.ref(body.name)}}
            op["requestBody"] = {"required": not body.optional, "content": content}
        elif body is not None:
            op["requestBody"] = body.request_body
        if query is not None:
            op["parameters"] = [*op.get("parameters", ()), *query.parameters(limits)]


# served without a token: a client discovers the API (and how to authenticate) first
@bp.get("/openapi.json")
def openapi_json() -> Response:
    return jsonify(document(state().config))
