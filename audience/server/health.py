"""``GET /healthz``: no token needed (load balancers call it); ``/openapi.json`` neither."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})
