"""Journeys (docs/language/journeys.md): ``/v1/journeys``.

A write carries DSL text with ``journey`` blocks; the rules (drafts, versions,
what each state allows) are the journey service's, the same the CLI applies.
A refusal is a JSON error with the service's code: 404 ``not_found``, 409 for
a change the journey's state does not allow, 400 for the rest (a text's
errors keep their line and column).  A contact's history is paged with
``limit`` and ``offset`` (``next`` is the offset of the next page, null on the
last).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify

from audience.runtime.journeys.definitions import JourneyDefinitions
from audience.runtime.journeys.service import JourneyError, JourneyService
from audience.server.context import current_node, requires
from audience.server.contract import Query, Values, accepts, integer, text
from audience.server.definitions import DSL_BODY, guarded
from audience.server.deliveries import parse_time
from audience.server.errors import ApiError, bad_request

bp = Blueprint("journeys", __name__)
T = TypeVar("T")

# everything else a service refuses is a 400
_STATUS = {"not_found": 404, "bad_state": 409, "ended": 409}
MAX_HISTORY = 10_000
# a replay takes about a second per year of events of a small store: a request
# must not hold a server thread for minutes
MAX_DRY_RUN_DAYS = 366
DAY_MS = 86_400_000
_TIME = "ISO 8601 or epoch ms"
DRY_RUN = Query(
    {
        "since": text(64, required=True, description=_TIME),
        "until": text(64, required=True, description=_TIME),
        "contact": text(1000, description="that contact's step log too"),
    }
)
HISTORY = Query({"limit": integer(1, MAX_HISTORY, 1000), "offset": integer(0, 2**31, 0)})


_defs: dict[tuple[str, str], JourneyDefinitions] = {}
_defs_lock = threading.Lock()


def _service() -> JourneyService:
    store = current_node().store
    key = (str(store.path), store.node)
    with _defs_lock:
        if key not in _defs:  # the tables are migrated once per node, not per request
            _defs[key] = JourneyDefinitions(store.triggers.log)
        defs = _defs[key]
    return JourneyService(store, defs=defs)


def _refused(fn: Callable[..., T], *args: Any) -> T:
    try:
        return guarded(fn, *args)
    except JourneyError as err:
        status = _STATUS.get(err.code, 400)
        if err.problems:
            raise ApiError(status, err.code, err.message, problems=err.problems) from None
        raise ApiError(status, err.code, err.message) from None


def _described(method: str, name: str) -> Response:
    """The journey as ``describe`` gives it, after the service's ``method`` on it."""
    svc = _service()
    return jsonify(svc.describe(_refused(getattr(svc, method), name)))


@bp.get("/v1/journeys")
@requires("read")
def list_journeys() -> Response:
    svc = _service()
    return jsonify({"journeys": [svc.describe(j) for j in svc.list()]})


@bp.post("/v1/journeys")
@requires("write")
@accepts(DSL_BODY)
def add_journeys(body: Values) -> Response:
    svc = _service()
    saved = _refused(svc.add, body["text"], "<journeys>")
    return jsonify({"journeys": [svc.describe(j) for j in saved]})


@bp.get("/v1/journeys/<name>")
@requires("read")
def get_journey(name: str) -> Response:
    return _described("get", name)


@bp.delete("/v1/journeys/<name>")
@requires("write")
def delete_journey(name: str) -> Response:
    _refused(_service().delete, name)
    return jsonify({"deleted": name})


def _state_route(verb: str, method: str) -> None:
    """``POST /v1/journeys/<name>/VERB``: the service's ``method`` (go live, pause, end)."""

    @requires("write")
    def change(name: str) -> Response:
        return _described(method, name)

    bp.add_url_rule(f"/v1/journeys/<name>/{verb}", f"{verb}_journey", change, methods=["POST"])


for _verb, _method in (("live", "go_live"), ("pause", "pause"), ("end", "end")):
    _state_route(_verb, _method)


@bp.get("/v1/journeys/<name>/steps")
@requires("read")
def journey_steps(name: str) -> Response:
    return jsonify({"steps": _refused(_service().step_counts, name)})


@bp.get("/v1/journeys/<name>/dry-run")
@requires("read")
@accepts(query=DRY_RUN)
def dry_run_journey(name: str, query: Values) -> Response:
    since = parse_time(query["since"], "since")
    until = parse_time(query["until"], "until")
    assert since is not None and until is not None  # both required
    if until < since:
        raise bad_request("invalid_request", "'until' is before 'since'")
    if until - since > MAX_DRY_RUN_DAYS * DAY_MS:
        raise bad_request(
            "invalid_request",
            f"a dry run covers at most {MAX_DRY_RUN_DAYS} days",
            "replay a longer span a year at a time, or with 'audience journeys dry-run'",
        )
    report = _refused(_service().dry_run, name, since, until, query["contact"])
    return jsonify(report.to_dict())


@bp.get("/v1/journeys/<name>/contacts/<contact_id>")
@requires("read")
def journey_position(name: str, contact_id: str) -> Response:
    runs = _refused(_service().position, name, contact_id)
    return jsonify({"journey": name, "contact_id": contact_id, "runs": runs})


@bp.get("/v1/journeys/<name>/contacts/<contact_id>/history")
@requires("read")
@accepts(query=HISTORY)
def journey_history(name: str, contact_id: str, query: Values) -> Response:
    limit, offset = query["limit"], query["offset"]
    rows = _refused(_service().history, name, contact_id)
    page = rows[offset : offset + limit]
    nxt = offset + limit if offset + limit < len(rows) else None
    return jsonify({"journey": name, "contact_id": contact_id, "history": page, "next": nxt})


@bp.post("/v1/journeys/<name>/contacts/<contact_id>/enter")
@requires("write")
def enter_journey(name: str, contact_id: str) -> Response:
    node = current_node()
    svc = _service()
    _refused(svc.get, name)  # an unknown journey is named first
    if node.contacts.find(node.store.snapshot(), contact_id) is None:
        raise ApiError(404, "not_found", f"no contact {contact_id!r} in this node")
    return jsonify(_refused(svc.enter, name, contact_id))
