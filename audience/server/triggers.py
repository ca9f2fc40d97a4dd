"""Saved triggers: ``/v1/triggers`` (list, create) and ``/v1/triggers/{name}``
(get, replace, delete).

A request carries the trigger as DSL text (one ``trigger`` definition; DND
policies written beside it are saved too), plus ``enabled`` and a validity
span (``valid_from``/``valid_until``, ISO 8601 or epoch ms).  ``valid_from``
defaults to the moment the trigger is first saved (it reacts to what happens
after; a replace keeps the one it had unless given).  The text is checked
against the node's schema and saved segments, policies and templates before
anything is saved, as ``audience check --store`` does.  Triggers belong to
the store and fire on every node's ingests.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from audience.dsl.ast import DndPolicy, Trigger
from audience.runtime.triggers import SavedTrigger
from audience.server.context import current_node, requires
from audience.server.contract import Body, Values, accepts, flag, text, time
from audience.server.definitions import created, exists, guarded, missing, one_definition
from audience.server.deliveries import parse_time
from audience.server.evaluate import MAX_TEXT

bp = Blueprint("triggers", __name__)
WRITE = Body(
    "TriggerWrite",
    {
        "text": text(MAX_TEXT, required=True, description="one trigger (and DND policies)"),
        "enabled": flag(True),
        "valid_from": time("reacts to events from then; default: when first saved"),
        "valid_until": time("reacts to events until then; default: for ever"),
    },
)


def trigger_json(t: SavedTrigger) -> dict[str, Any]:
    return t.to_dict()


def _save(body: Values, name: str | None, is_new: bool) -> Response:
    text, enabled = body["text"], body["enabled"]
    vf = parse_time(body["valid_from"], "valid_from")
    vu = parse_time(body["valid_until"], "valid_until")
    engine = current_node().triggers
    program = guarded(engine.check, text, "<trigger>")
    got = one_definition(program, Trigger, "trigger", name, beside=(DndPolicy,))
    existed = engine.defs.get_trigger(got) is not None
    if is_new and existed:
        raise exists("trigger", got)
    triggers, policies = guarded(
        engine.add, text, "<trigger>", enabled=enabled, valid_from_ms=vf, valid_until_ms=vu
    )
    body = {**trigger_json(triggers[0]), "policies": [p.name for p in policies]}
    return created(body, f"/v1/triggers/{got}", 200 if existed else 201)


@bp.get("/v1/triggers")
@requires("read")
def list_triggers() -> Response:
    found = current_node().triggers.defs.list_triggers()
    return jsonify({"triggers": [trigger_json(t) for t in found]})


@bp.post("/v1/triggers")
@requires("write")
@accepts(WRITE)
def create_trigger(body: Values) -> Response:
    return _save(body, None, is_new=True)


@bp.get("/v1/triggers/<name>")
@requires("read")
def get_trigger(name: str) -> Response:
    t = current_node().triggers.defs.get_trigger(name)
    if t is None:
        raise missing("trigger", name)
    return jsonify(trigger_json(t))


@bp.put("/v1/triggers/<name>")
@requires("write")
@accepts(WRITE)
def replace_trigger(name: str, body: Values) -> Response:
    return _save(body, name, is_new=False)


@bp.delete("/v1/triggers/<name>")
@requires("write")
def delete_trigger(name: str) -> Response:
    if not current_node().triggers.defs.delete_trigger(name):
        raise missing("trigger", name)
    return jsonify({"deleted": name})
