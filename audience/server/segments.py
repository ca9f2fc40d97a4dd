"""Saved segments: ``/v1/segments`` (list, create), ``/v1/segments/{name}``
(get, replace, delete) and ``/v1/segments/{name}/audience``.

A definition travels as DSL text: a ``segment "Name" { ... }`` definition or a
bare condition.  It is checked and compiled against the node's schema before
it is saved, so a saved segment always compiled when it was saved.  Saved
segments belong to the store and are shared by its nodes (docs/store.md);
an audience is always computed over the caller's node.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from audience.dsl.ast import Segment
from audience.dsl.parser import parse
from audience.runtime.saved import validate_segment
from audience.runtime.store import SavedSegment, SegmentInUse, StoreError
from audience.server.bodies import query_int
from audience.server.context import current_node, requires
from audience.server.contract import Body, Query, Values, accepts, text
from audience.server.definitions import DSL_BODY, DSL_TEXT
from audience.server.errors import ApiError, bad_request
from audience.server.evaluate import CURSOR, EXPLAIN, LIMIT, compile_text, run_query
from audience.server.evaluate import Query as Evaluation

bp = Blueprint("segments", __name__)

CREATE = Body(
    "SegmentCreate",
    {
        "name": text(200, description="default: the name of the text's segment definition"),
        "text": DSL_TEXT,
    },
)
AUDIENCE = Query(
    {
        "as_of": text(64, description="ISO 8601 or epoch ms; default now"),
        "limit": LIMIT,
        "cursor": CURSOR,
        "explain": EXPLAIN,
    }
)


def _name_of(text: str) -> str | None:
    program = parse(text, filename="<segment>")
    defs = [d for d in program.definitions if isinstance(d, Segment)]
    return defs[0].name if program.condition is None and len(defs) == 1 else None


def _save(name: str, text: str) -> SavedSegment:
    node = current_node()
    if "/" in name:
        raise bad_request("invalid_request", "a segment name cannot hold '/'")
    filename = f"<segment {name!r}>"
    validate_segment(node.store, name, text, filename=filename)
    compile_text(node.store, text, filename)
    try:
        return node.store.save_segment(name, text)
    except StoreError as exc:
        raise bad_request("invalid_request", str(exc)) from None


def _find(name: str) -> SavedSegment:
    seg = current_node().store.get_segment(name)
    if seg is None:
        raise ApiError(404, "not_found", f"no saved segment {name!r}")
    return seg


@bp.get("/v1/segments")
@requires("read")
def list_segments() -> Response:
    return jsonify({"segments": [s.to_dict() for s in current_node().store.list_segments()]})


@bp.post("/v1/segments")
@requires("write")
@accepts(CREATE)
def create_segment(body: Values) -> Response:
    dsl, name = body["text"], body["name"]
    if name is None:
        name = _name_of(dsl)
        if name is None:
            raise bad_request(
                "invalid_request",
                "give 'name', or a text that is one segment definition",
            )
    if current_node().store.get_segment(name.strip()) is not None:
        raise ApiError(409, "conflict", f"a segment {name!r} exists", "replace it with PUT")
    saved = _save(name, dsl)
    resp = jsonify(saved.to_dict())
    resp.status_code = 201
    resp.headers["Location"] = f"/v1/segments/{saved.name}"
    return resp


@bp.get("/v1/segments/<name>")
@requires("read")
def get_segment(name: str) -> Response:
    return jsonify(_find(name).to_dict())


@bp.put("/v1/segments/<name>")
@requires("write")
@accepts(DSL_BODY)
def replace_segment(name: str, body: Values) -> Response:
    existed = current_node().store.get_segment(name) is not None
    resp = jsonify(_save(name, body["text"]).to_dict())
    resp.status_code = 200 if existed else 201
    return resp


@bp.delete("/v1/segments/<name>")
@requires("write")
def delete_segment(name: str) -> Response:
    try:
        deleted = current_node().store.delete_segment(name)
    except SegmentInUse as exc:
        raise ApiError(409, "segment_in_use", str(exc), used_by=exc.users) from None
    if not deleted:
        raise ApiError(404, "not_found", f"no saved segment {name!r}")
    return jsonify({"deleted": name})


@bp.get("/v1/segments/<name>/audience")
@requires("read")
@accepts(query=AUDIENCE)
def segment_audience(name: str, query: Values) -> Response:
    seg = _find(name)
    as_of: str | int | None = query["as_of"]
    if isinstance(as_of, str):
        number = query_int(as_of)
        if number is not None:
            as_of = number
    evaluation = Evaluation(
        text=seg.text,
        filename=f"<segment {name!r}>",
        as_of=as_of,
        limit=query["limit"],
        cursor=query["cursor"],
        explain=query["explain"],
        saved=True,
    )
    return run_query(current_node(), evaluation)
