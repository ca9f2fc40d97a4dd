"""Saved DND policies: ``/v1/dnd-policies`` (list, create) and
``/v1/dnd-policies/{name}`` (get, replace, delete), as DSL text (one ``dnd``
definition, docs/language/dnd.md).  Policies belong to the store."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from audience.dsl.ast import DndPolicy
from audience.runtime.triggers import SavedPolicy
from audience.server.context import current_node, requires
from audience.server.contract import Values, accepts
from audience.server.definitions import (
    DSL_BODY,
    created,
    exists,
    guarded,
    missing,
    one_definition,
)

bp = Blueprint("dnd", __name__)


def policy_json(p: SavedPolicy) -> dict[str, Any]:
    return p.to_dict()


def _save(text: str, name: str | None, is_new: bool) -> Response:
    engine = current_node().triggers
    program = guarded(engine.check, text, "<dnd>")
    got = one_definition(program, DndPolicy, "dnd policy", name)
    existed = engine.defs.get_policy(got) is not None
    if is_new and existed:
        raise exists("DND policy", got)
    saved = guarded(engine.add_policies, text, "<dnd>")
    return created(policy_json(saved[0]), f"/v1/dnd-policies/{got}", 200 if existed else 201)


@bp.get("/v1/dnd-policies")
@requires("read")
def list_policies() -> Response:
    found = current_node().triggers.defs.list_policies()
    return jsonify({"policies": [policy_json(p) for p in found]})


@bp.post("/v1/dnd-policies")
@requires("write")
@accepts(DSL_BODY)
def create_policy(body: Values) -> Response:
    return _save(body["text"], None, is_new=True)


@bp.get("/v1/dnd-policies/<name>")
@requires("read")
def get_policy(name: str) -> Response:
    p = current_node().triggers.defs.get_policy(name)
    if p is None:
        raise missing("DND policy", name)
    return jsonify(policy_json(p))


@bp.put("/v1/dnd-policies/<name>")
@requires("write")
@accepts(DSL_BODY)
def replace_policy(name: str, body: Values) -> Response:
    return _save(body["text"], name, is_new=False)


@bp.delete("/v1/dnd-policies/<name>")
@requires("write")
def delete_policy(name: str) -> Response:
    if not current_node().triggers.defs.delete_policy(name):
        raise missing("DND policy", name)
    return jsonify({"deleted": name})
