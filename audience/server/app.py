"""``create_app(config)``: the Flask application over one store.

One blueprint per resource; JSON in and out (errors included, see
errors.py); request bodies capped by ``max_content_length`` (413); one
structured access-log record per request on the ``audience.server.access``
logger (a JSON object: method, path, status, ms, bytes, source, node).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request

from audience.server import (
    deliveries,
    dnd,
    evaluate,
    events,
    health,
    journeys,
    meta_leads,
    meta_syncs,
    meta_webhooks,
    openapi,
    plans,
    profiles,
    reports,
    segments,
    templates,
    tracking,
    triggers,
)
from audience.server.context import ServerConfig, ServerState
from audience.server.errors import register_error_handlers

access_log = logging.getLogger("audience.server.access")

BLUEPRINTS = (
    health,
    openapi,
    evaluate,
    events,
    profiles,
    segments,
    triggers,
    dnd,
    templates,
    deliveries,
    plans,
    journeys,
    meta_syncs,
    reports,
    tracking,
    meta_webhooks,
    meta_leads,
)


def create_app(config: ServerConfig | dict[str, Any] | str | Path) -> Flask:
    """The API over the store of ``config`` (a ServerConfig, a dict of its
    fields, or just the store path)."""
    cfg = ServerConfig.of(config)
    state = ServerState(cfg)
    state.nodes.names()  # a path that is not a store fails here, not at the first request
    state.sources.list_sources()  # creates the sources tables before the first request
    app = Flask("audience.server")
    app.config["MAX_CONTENT_LENGTH"] = cfg.max_content_length
    # OPTIONS would answer an empty 200 outside the JSON API: let it be a JSON 405
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["audience"] = state
    # /v1/segments/ and /v1/segments answer the same (no redirect to a slash URL)
    app.url_map.strict_slashes = False
    register_error_handlers(app)
    for module in BLUEPRINTS:
        app.register_blueprint(module.bp)
    app.before_request(_start)
    app.after_request(_log)
    return app


def _start() -> None:
    g.t0 = time.perf_counter()


def _log(resp: Response) -> Response:
    if access_log.isEnabledFor(logging.INFO):
        source = g.get("source")
        record = {
            "method": request.method,
            "path": request.path,
            "status": resp.status_code,
            "ms": round((time.perf_counter() - g.get("t0", time.perf_counter())) * 1000, 3),
            "in": request.content_length or 0,
            "out": resp.content_length,
            "source": source.id if source is not None else None,
            "node": source.node if source is not None else None,
            "remote": request.remote_addr,
        }
        access_log.info(json.dumps(record))
    return resp
