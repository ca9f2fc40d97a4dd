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

from flask import Blueprint, Response, jsonify

from audience.integrations.meta.graph import GraphError
from audience.integrations.meta.leads.forms import fields_of, form_questions
from audience.integrations.meta.leads.inbox import STATES
from audience.integrations.meta.leads.mapping import METADATA, LeadFormError
from audience.integrations.meta.leads.worker import LeadWorker
from audience.integrations.meta.tokens import IntegrationError
from audience.server.context import current_node, requires, state
from audience.server.contract import Body, Query, Values, accepts, choice, field, integer, text
from audience.server.errors import ApiError
from audience.server.meta_graph import graph_refused

bp = Blueprint("meta_leads", __name__)
T = TypeVar("T")
_STATUS = {"no_lead_form": 404, "lead_form_exists": 409, "no_integration": 400}
FIELD_MAP = {
    "type": "object",
    "required": ["field", "to"],
    "properties": {
        "field": {"type": "string", "description": "the form's field (question) key"},
        "to": {"type": "string", "description": "a profile field of the node's schema"},
        "required": {"type": "boolean", "description": "leads lacking it are still stored"},
    },
}
_DIGITS = "^[0-9]+$"
CONNECT = Body(
    "LeadFormConnect",
    {
        "name": text(200, required=True),
        "integration": text(200, required=True, description="whose token reads the leads"),
        "page_id": text(64, required=True, pattern=_DIGITS),
        "form_id": text(64, required=True, pattern=_DIGITS),
        "mapping": field(
            {
                "description": "form field to profile field: a list, or an object field -> to",
                "oneOf": [
                    {"type": "array", "items": FIELD_MAP},
                    {"type": "object", "additionalProperties": {"type": "string"}},
                ],
            },
            "must be a list of {field, to, required} or an object of field -> to",
            default=[],
        ),
        "metadata": field(
            {"type": "array", "items": {"enum": list(METADATA)}},
            "must be a list of: " + ", ".join(METADATA),
            default=list(METADATA),
        ),
        "source": text(200, required=True, description="the tag stored on each lead"),
        "source_field": text(200),
        "match_field": text(
            200,
            default="email",
            null=True,
            description="the profile field an existing contact is found by (null: none)",
        ),
        "since": integer(0, 2**40, 0, description="unix seconds"),
    },
)
LEADS = Query({"state": choice(*STATES, default=None), "limit": integer(1, 10_000, 50)})


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
@accepts(CONNECT)
def connect_form(body: Values) -> Response:
    node = current_node()
    worker = _worker()
    integration = body["integration"]

    def go() -> Any:
        worker.integrations.get(integration)
        return worker.forms.connect(
            body["name"],
            node=node.store.node,
            schema=node.store.schema,
            integration=integration,
            page_id=body["page_id"],
            form_id=body["form_id"],
            fields=fields_of(body["mapping"]),
            metadata=list(body["metadata"]),
            source=body["source"],
            source_field=body["source_field"],
            match_field=body["match_field"],
            since_s=body["since"],
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
@accepts(query=LEADS)
def form_leads(name: str, query: Values) -> Response:
    worker = _worker()
    form = _refused(lambda: worker.forms.get(name, current_node().store.node))
    leads = worker.inbox.recent(form.form_id, query["state"], query["limit"])
    return jsonify({"leads": [lead.to_json() for lead in leads]})
