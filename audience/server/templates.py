"""Email templates: ``/v1/templates`` (list, create) and ``/v1/templates/{name}``
(get, replace, delete).  A template is a subject, an HTML body and a text body
with ``{{ field }}``s (audience.runtime.triggers.templates); a part that does
not parse is a 400 ``template_error`` and nothing is saved."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from audience.runtime.triggers import SavedTemplate, TemplateError
from audience.server.context import current_node, requires
from audience.server.contract import Body, Values, accepts, text
from audience.server.definitions import created, exists, guarded, missing
from audience.server.errors import bad_request
from audience.server.evaluate import MAX_TEXT

bp = Blueprint("templates", __name__)
PARTS = ("subject", "html", "text")
_PARTS = {p: text(MAX_TEXT, required=True) for p in PARTS}
CREATE = Body("TemplateCreate", {"name": text(200, required=True), **_PARTS})
REPLACE = Body("TemplateParts", _PARTS)


def template_json(t: SavedTemplate) -> dict[str, Any]:
    return t.to_dict()


def _save(body: Values, name: str | None) -> Response:
    """Create (``name`` None: it comes in the body) or replace a template."""
    is_new = name is None
    if name is None:
        name = str(body["name"])
    if "/" in name:
        raise bad_request("invalid_request", "a template name cannot hold '/'")
    parts = [body[p] for p in PARTS]
    engine = current_node().triggers
    existed = engine.defs.get_template(name.strip()) is not None
    if is_new and existed:
        raise exists("template", name)
    try:
        saved = guarded(engine.add_template, name, *parts)
    except TemplateError as exc:
        raise bad_request("template_error", str(exc)) from None
    return created(template_json(saved), f"/v1/templates/{saved.name}", 200 if existed else 201)


@bp.get("/v1/templates")
@requires("read")
def list_templates() -> Response:
    found = current_node().triggers.defs.list_templates()
    return jsonify({"templates": [template_json(t) for t in found]})


@bp.post("/v1/templates")
@requires("write")
@accepts(CREATE)
def create_template(body: Values) -> Response:
    return _save(body, None)


@bp.get("/v1/templates/<name>")
@requires("read")
def get_template(name: str) -> Response:
    t = current_node().triggers.defs.get_template(name)
    if t is None:
        raise missing("template", name)
    return jsonify(template_json(t))


@bp.put("/v1/templates/<name>")
@requires("write")
@accepts(REPLACE)
def replace_template(name: str, body: Values) -> Response:
    return _save(body, name)


@bp.delete("/v1/templates/<name>")
@requires("write")
def delete_template(name: str) -> Response:
    if not current_node().triggers.defs.delete_template(name):
        raise missing("template", name)
    return jsonify({"deleted": name})
