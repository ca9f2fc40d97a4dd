"""Plans and the deliveries they send (docs/language/plans.md): ``/v1/plans`` and
``/v1/messages`` (``/v1/deliveries`` is the delivery log).

A write carries DSL text with ``delivery`` and ``plan`` blocks; the rules
(drafts, ready plans, what may be edited when) are the plan service's, the
same the CLI applies.  A refusal is a JSON error with the service's code:
404 ``not_found``, 409 ``plan_due`` / ``plan_running`` / ``delivery_in_use``,
400 for the rest (``problems`` lists why a plan cannot be ready).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request

from audience.runtime.plans.definitions import PlanDefinitions, SavedDelivery
from audience.runtime.plans.service import PlanError, PlanService
from audience.server.bodies import Fields, json_object
from audience.server.context import current_node, requires
from audience.server.definitions import guarded
from audience.server.deliveries import parse_time
from audience.server.errors import ApiError
from audience.server.evaluate import MAX_TEXT

bp = Blueprint("plans", __name__)
T = TypeVar("T")

_STATUS = {"not_found": 404, "plan_due": 409, "plan_running": 409, "delivery_in_use": 409}
_defs: dict[tuple[str, str], PlanDefinitions] = {}
_defs_lock = threading.Lock()


def _service() -> PlanService:
    store = current_node().store
    key = (str(store.path), store.node)
    with _defs_lock:
        if key not in _defs:  # one connection per node, not one per request
            _defs[key] = PlanDefinitions.for_store(store.path)
        defs = _defs[key]
    return PlanService(store, defs=defs)


def _refused(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return guarded(fn, *args, **kwargs)
    except PlanError as err:
        status = _STATUS.get(err.code, 400)
        if err.problems:
            raise ApiError(status, err.code, err.message, problems=err.problems) from None
        raise ApiError(status, err.code, err.message) from None


def _text() -> str:
    f = Fields(json_object(), {"text"})
    return f.text("text", required=True, max_len=MAX_TEXT) or ""


def delivery_json(d: SavedDelivery) -> dict[str, Any]:
    return {
        "name": d.name,
        "text": d.text,
        "version": d.version,
        "created": d.created,
        "updated": d.updated,
    }


# ---------------------------------------------------------------------------- plans
@bp.get("/v1/plans")
@requires("read")
def list_plans() -> Response:
    svc = _service()
    return jsonify({"plans": [svc.describe(p) for p in svc.list_plans()]})


@bp.post("/v1/plans")
@requires("write")
def add_plans() -> Response:
    text = _text()
    svc = _service()
    result = _refused(svc.add, text, "<plans>")
    return jsonify(
        {
            "deliveries": [delivery_json(d) for d in result.deliveries],
            "plans": [svc.describe(p) for p in result.plans],
        }
    )


@bp.get("/v1/plans/<name>")
@requires("read")
def get_plan(name: str) -> Response:
    svc = _service()
    return jsonify(svc.describe(_refused(svc.get_plan, name)))


@bp.delete("/v1/plans/<name>")
@requires("write")
def delete_plan(name: str) -> Response:
    _refused(_service().delete_plan, name)
    return jsonify({"deleted": name})


@bp.post("/v1/plans/<name>/ready")
@requires("write")
def ready_plan(name: str) -> Response:
    svc = _service()
    return jsonify(svc.describe(_refused(svc.make_ready, name)))


@bp.post("/v1/plans/<name>/draft")
@requires("write")
def draft_plan(name: str) -> Response:
    svc = _service()
    return jsonify(svc.describe(_refused(svc.make_draft, name)))


@bp.get("/v1/plans/<name>/runs")
@requires("read")
def plan_runs(name: str) -> Response:
    svc = _service()
    _refused(svc.get_plan, name)
    return jsonify({"runs": [r.to_dict() for r in svc.defs.list_runs(svc.node, name)]})


@bp.get("/v1/plans/<name>/preview")
@requires("read")
def preview_plan(name: str) -> Response:
    from audience.runtime.plans.preview import preview

    svc = _service()
    at = parse_time(request.args.get("at"), "at")
    # a sharded node's audience decided by the server's cluster, as its runs' are
    cluster = current_node().cluster
    if cluster is None:
        return jsonify(_refused(preview, svc.store, name, at, defs=svc.defs))
    from audience.dist import ClusterError

    try:
        return jsonify(_refused(preview, svc.store, name, at, defs=svc.defs, cluster=cluster))
    except ClusterError as exc:
        raise ApiError(503, "cluster_unavailable", str(exc)) from None


# ---------------------------------------------------------------------------- deliveries
@bp.get("/v1/messages")
@requires("read")
def list_messages() -> Response:
    return jsonify({"deliveries": [delivery_json(d) for d in _service().list_deliveries()]})


@bp.post("/v1/messages")
@requires("write")
def add_messages() -> Response:
    text = _text()
    result = _refused(_service().add, text, "<deliveries>", plans=False)
    return jsonify({"deliveries": [delivery_json(d) for d in result.deliveries]})


@bp.get("/v1/messages/<name>")
@requires("read")
def get_message(name: str) -> Response:
    return jsonify(delivery_json(_refused(_service().get_delivery, name)))


@bp.delete("/v1/messages/<name>")
@requires("write")
def delete_message(name: str) -> Response:
    _refused(_service().delete_delivery, name)
    return jsonify({"deleted": name})


@bp.post("/v1/messages/<name>/test")
@requires("write")
def test_message(name: str) -> Response:
    from audience.runtime.plans.preview import test_send

    f = Fields(json_object(), {"contact"})
    contact = f.text("contact", max_len=1000)
    svc = _service()
    return jsonify({"sent": _refused(test_send, svc.store, name, contact, defs=svc.defs)})
