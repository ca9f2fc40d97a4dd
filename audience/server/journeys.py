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

from flask import Blueprint, Response, jsonify, request

from audience.runtime.journeys.definitions import JourneyDefinitions
from audience.runtime.journeys.service import JourneyError, JourneyService
from audience.server.bodies import Fields, json_object, query_int
from audience.server.context import current_node, requires
from audience.server.definitions import guarded
from audience.server.deliveries import parse_time
from audience.server.errors import ApiError, bad_request
from audience.server.evaluate import MAX_TEXT

bp = Blueprint("journeys", __name__)
T = TypeVar("T")

# everything else a service refuses is a 400
_STATUS = {"not_found": 404, "bad_state": 409, "ended": 409}
MAX_HISTORY = 10_000
# a replay takes about a second per year of events of a small store: a request
# must not hold a server thread for minutes
MAX_DRY_RUN_DAYS = 366
DAY_MS = 86_400_000


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


def _query(allowed: set[str]) -> dict[str, str]:
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise bad_request("invalid_request", f"unknown query parameter {unknown[0]!r}")
    return dict(request.args)


def _int_arg(args: dict[str, str], key: str, default: int, lo: int, hi: int) -> int:
    raw = args.get(key)
    value = default if raw is None else query_int(raw)
    if value is None or not lo <= value <= hi:
        raise bad_request("invalid_request", f"{key!r} must be an integer from {lo} to {hi}")
    return value


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
def add_journeys() -> Response:
    f = Fields(json_object(), {"text"})
    text = f.text("text", required=True, max_len=MAX_TEXT) or ""
    svc = _service()
    saved = _refused(svc.add, text, "<journeys>")
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
def dry_run_journey(name: str) -> Response:
    args = _query({"since", "until", "contact"})
    since = parse_time(args.get("since"), "since")
    until = parse_time(args.get("until"), "until")
    if since is None or until is None:
        raise bad_request("invalid_request", "'since' and 'until' are required")
    if until < since:
        raise bad_request("invalid_request", "'until' is before 'since'")
    if until - since > MAX_DRY_RUN_DAYS * DAY_MS:
        raise bad_request(
            "invalid_request",
            f"a dry run covers at most {MAX_DRY_RUN_DAYS} days",
            "replay a longer span a year at a time, or with 'audience journeys dry-run'",
        )
    report = _refused(_service().dry_run, name, since, until, args.get("contact"))
    return jsonify(report.to_dict())


@bp.get("/v1/journeys/<name>/contacts/<contact_id>")
@requires("read")
def journey_position(name: str, contact_id: str) -> Response:
    runs = _refused(_service().position, name, contact_id)
    return jsonify({"journey": name, "contact_id": contact_id, "runs": runs})


@bp.get("/v1/journeys/<name>/contacts/<contact_id>/history")
@requires("read")
def journey_history(name: str, contact_id: str) -> Response:
    args = _query({"limit", "offset"})
    limit = _int_arg(args, "limit", 1000, 1, MAX_HISTORY)
    offset = _int_arg(args, "offset", 0, 0, 2**31)
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
