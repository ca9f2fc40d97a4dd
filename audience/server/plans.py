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

from flask import Blueprint, Response, jsonify

from audience.runtime.plans.definitions import PlanDefinitions, SavedDelivery
from audience.runtime.plans.service import PlanError, PlanService
from audience.server.context import current_node, requires
from audience.server.contract import Body, Query, Values, accepts, text
from audience.server.definitions import DSL_BODY, guarded
from audience.server.deliveries import parse_time
from audience.server.errors import ApiError

bp = Blueprint("plans", __name__)
T = TypeVar("T")

_STATUS = {"not_found": 404, "plan_due": 409, "plan_running": 409, "delivery_in_use": 409}
_defs: dict[tuple[str, str], PlanDefinitions] = {}
_defs_lock = threading.Lock()
TEST_SEND = Body("TestSendRequest", {"contact": text(1000, description="the sample contact")})
PREVIEW = Query({"at": text(64, description="ISO 8601 or epoch ms; default: the next occurrence")})


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
@accepts(DSL_BODY)
def add_plans(body: Values) -> Response:
    svc = _service()
    result = _refused(svc.add, body["text"], "<plans>")
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
@accepts(query=PREVIEW)
def preview_plan(name: str, query: Values) -> Response:
    from audience.runtime.plans.preview import preview

    svc = _service()
    at = parse_time(query["at"], "at")
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
@accepts(DSL_BODY)
def add_messages(body: Values) -> Response:
    result = _refused(_service().add, body["text"], "<deliveries>", plans=False)
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
@accepts(TEST_SEND)
def test_message(name: str, body: Values) -> Response:
    from audience.runtime.plans.preview import test_send

    svc = _service()
    sent = _refused(test_send, svc.store, name, body["contact"], defs=svc.defs)
    return jsonify({"sent": sent})
