"""Lead forms of the token's node (docs/integrations/meta-leads.md): ``/v1/leadforms``.

- ``GET /v1/leadforms``: the node's connected forms;
- ``POST /v1/leadforms``: connect one (the mapping is checked against the node's
  schema: a profile field it lacks is a 400 naming it, nothing written);
- ``GET /v1/leadforms/{name}``: a form with its leads counted by state;
- ``DELETE /v1/leadforms/{name}``: disconnect it;
- ``POST /v1/leadforms/{name}/backfill``: fetch and store the leads created
  since its watermark (answered when they are stored);
- ``GET /v1/leadforms/{name}/leads``: its most recent leads (``state``, ``limit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request

from audience.integrations.meta.graph import GraphError
from audience.integrations.meta.leads.forms import fields_of, form_questions
from audience.integrations.meta.leads.inbox import STATES
from audience.integrations.meta.leads.mapping import METADATA, LeadFormError
from audience.integrations.meta.leads.worker import LeadWorker
from audience.integrations.meta.tokens import IntegrationError
from audience.server.bodies import Fields, json_object
from audience.server.context import current_node, requires, state
from audience.server.errors import ApiError, bad_request
from audience.server.meta_graph import graph_refused

bp = Blueprint("meta_leads", __name__)
T = TypeVar("T")
_STATUS = {"no_lead_form": 404, "lead_form_exists": 409, "no_integration": 400}
_CONNECT_FIELDS = {
    "name",
    "integration",
    "page_id",
    "form_id",
    "mapping",
    "metadata",
    "source",
    "source_field",
    "match_field",
    "since",
}


def _worker() -> LeadWorker:
    st = state()
    nodes = st.nodes
    return LeadWorker.of(
        st.config.store,
        st.config.clock,
        config=st.config.graph,
        store_for=lambda node: nodes.get(node).store,
    )


def _refused(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (LeadFormError, IntegrationError) as err:
        raise ApiError(_STATUS.get(err.code, 400), err.code, str(err)) from None
    except GraphError as err:
        raise graph_refused(err) from None


@bp.get("/v1/leadforms")
@requires("read")
def list_forms() -> Response:
    node = current_node().store.node
    return jsonify({"leadforms": [f.to_json() for f in _worker().forms.all(node)]})


@bp.post("/v1/leadforms")
@requires("write")
def connect_form() -> Response:
    body = json_object()
    f = Fields(body, _CONNECT_FIELDS)
    node = current_node()
    worker = _worker()
    metadata = body.get("metadata", list(METADATA))
    if not isinstance(metadata, list) or not all(isinstance(m, str) for m in metadata):
        raise bad_request("invalid_request", "'metadata' must be a list of field names")
    integration = f.text("integration", required=True) or ""

    def go() -> Any:
        worker.integrations.get(integration)
        return worker.forms.connect(
            f.text("name", required=True) or "",
            node=node.store.node,
            schema=node.store.schema,
            integration=integration,
            page_id=f.text("page_id", required=True) or "",
            form_id=f.text("form_id", required=True) or "",
            fields=fields_of(body.get("mapping", [])),
            metadata=metadata,
            source=f.text("source", required=True) or "",
            source_field=f.text("source_field"),
            match_field=f.text("match_field") if "match_field" in body else "email",
            since_s=f.integer("since", 0, 0, 2**40),
            questions=form_questions(worker.integrations, integration),
        )

    form = _refused(go)
    resp = jsonify(form.to_json())
    resp.status_code = 201
    return resp


@bp.get("/v1/leadforms/<name>")
@requires("read")
def show_form(name: str) -> Response:
    worker = _worker()
    form = _refused(lambda: worker.forms.get(name, current_node().store.node))
    return jsonify({**form.to_json(), "leads": worker.inbox.counts(form.form_id)})


@bp.delete("/v1/leadforms/<name>")
@requires("write")
def disconnect_form(name: str) -> Response:
    worker = _worker()
    form = _refused(lambda: worker.forms.disconnect(name, current_node().store.node))
    return jsonify({"disconnected": form.name})


@bp.post("/v1/leadforms/<name>/backfill")
@requires("write")
def backfill_form(name: str) -> Response:
    from audience.integrations.meta.leads.backfill import backfill

    worker = _worker()
    result = _refused(lambda: backfill(worker, name, current_node().store.node))
    return jsonify(result.to_json())


@bp.get("/v1/leadforms/<name>/leads")
@requires("read")
def form_leads(name: str) -> Response:
    worker = _worker()
    form = _refused(lambda: worker.forms.get(name, current_node().store.node))
    st = request.args.get("state")
    if st is not None and st not in STATES:
        raise bad_request("invalid_request", f"'state' must be one of {', '.join(STATES)}")
    try:
        limit = int(request.args.get("limit", "50"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= 10_000:
        raise bad_request("invalid_request", "'limit' must be an integer from 1 to 10000")
    leads = worker.inbox.recent(form.form_id, st, limit)
    return jsonify({"leads": [lead.to_json() for lead in leads]})
