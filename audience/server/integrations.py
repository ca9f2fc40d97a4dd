"""Meta integrations (docs/integrations/meta.md): ``/v1/integrations`` and
``/v1/integration-reminders``.

An integration is the store's, not a node's (a sync or a lead form of any node
names it), so any source may read them and a write source may change them.  A
token goes in (connect, re-authorize) and never comes back whole: answers show
it masked.  The Graph API is asked without retries (a request does not wait
out the platform's back-off): an unreachable or throttling platform is a 502 /
503 at once, and nothing is changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify

from audience.integrations.meta.graph import GraphError
from audience.integrations.meta.reminders import (
    DEFAULT_DAYS,
    ReminderSettings,
    body,
    due,
    load_settings,
    raise_due,
    save_settings,
)
from audience.integrations.meta.tokens import (
    IntegrationError,
    Integrations,
    integration_json,
)
from audience.runtime.delivery.log import DeliveryLog
from audience.server.context import requires, state
from audience.server.contract import Body, Values, accepts, field, text
from audience.server.errors import ApiError
from audience.server.meta_graph import graph_refused, request_graph

bp = Blueprint("integrations", __name__)
T = TypeVar("T")

MAX_TOKEN = 4096
_URL = text(4000, description="http(s) URL; null clears it")
_TOKEN = text(MAX_TOKEN, required=True)
CONNECT = Body(
    "IntegrationConnect",
    {
        "name": text(200, required=True),
        "account_id": text(64, required=True, description="act_N or N"),
        "token": _TOKEN,
        "reminder_url": _URL,
    },
)
CHANGE = Body("IntegrationChange", {"reminder_url": _URL})
REAUTHORIZE = Body("IntegrationToken", {"token": _TOKEN})
REMINDERS = Body(
    "ReminderWebhookWrite",
    {
        "url": _URL,
        "days": field(
            {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": 365},
                "minItems": 1,
                "description": "the days before expiry a reminder is posted",
            },
            "must be a list of whole numbers from 1 to 365",
            default=list(DEFAULT_DAYS),
            code="bad_days",  # as the settings' own check says
        ),
    },
)
_STATUS = {"no_integration": 404, "integration_exists": 409}


def _ints() -> Integrations:
    cfg = state().config
    return Integrations(cfg.store, request_graph(), cfg.clock)


def _refused(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except IntegrationError as err:
        code = "not_found" if err.code == "no_integration" else err.code
        raise ApiError(_STATUS.get(err.code, 400), code, str(err)) from None
    except GraphError as err:
        raise graph_refused(err) from None


def _one(ints: Integrations, name: str) -> dict[str, Any]:
    i = _refused(lambda: ints.get(name))
    out = integration_json(i, ints.clock())
    reminder = next((r for r in due(ints) if r.integration.name == name), None)
    out["reminder"] = None if reminder is None else body(reminder, ints.clock())
    return out


def _settings_json(s: ReminderSettings) -> dict[str, Any]:
    return {"url": s.url, "days": list(s.days)}


@bp.get("/v1/integrations")
@requires("read")
def list_integrations() -> Response:
    ints = _ints()
    now = ints.clock()
    return jsonify({"integrations": [integration_json(i, now) for i in ints.all()]})


@bp.post("/v1/integrations")
@requires("write")
@accepts(CONNECT)
def connect(body: Values) -> tuple[Response, int]:
    name, account, token = body["name"], body["account_id"], body["token"]
    ints = _ints()
    i = _refused(lambda: ints.connect(name, account, token, reminder_url=body["reminder_url"]))
    return jsonify(_one(ints, i.name)), 201


@bp.get("/v1/integrations/<name>")
@requires("read")
def show(name: str) -> Response:
    return jsonify(_one(_ints(), name))


@bp.patch("/v1/integrations/<name>")
@requires("write")
@accepts(CHANGE)
def change(name: str, body: Values) -> Response:
    ints = _ints()
    _refused(lambda: ints.set_reminder_url(name, body["reminder_url"]))
    return jsonify(_one(ints, name))


@bp.delete("/v1/integrations/<name>")
@requires("write")
def delete(name: str) -> Response:
    ints = _ints()
    _refused(lambda: ints.delete(name))
    return jsonify({"deleted": name})


@bp.post("/v1/integrations/<name>/check")
@requires("write")
def check(name: str) -> Response:
    """Ask the platform (debug_token), record its answer, raise a reminder now due."""
    ints = _ints()
    _refused(lambda: ints.check(name))
    out = _one(ints, name)
    log = DeliveryLog.open(state().config.store)
    try:
        raised = raise_due(ints, log, only=name)
    finally:
        log.close()
    out["reminder_delivery"] = raised[0].delivery_id if raised else None
    return jsonify(out)


@bp.post("/v1/integrations/<name>/reauthorize")
@requires("write")
@accepts(REAUTHORIZE)
def reauthorize(name: str, body: Values) -> Response:
    ints = _ints()
    _refused(lambda: ints.reauthorize(name, body["token"]))
    return jsonify(_one(ints, name))


@bp.get("/v1/integration-reminders")
@requires("read")
def reminders() -> Response:
    ints = _ints()
    settings = load_settings(ints)
    now = ints.clock()
    return jsonify(
        {
            "reminders": [{**body(r, now), "url": r.url} for r in due(ints, settings)],
            "webhook": _settings_json(settings),
        }
    )


@bp.put("/v1/integration-reminders")
@requires("write")
@accepts(REMINDERS)
def set_reminders(body: Values) -> Response:
    ints = _ints()
    # a PUT replaces both: without 'days', the default days
    days = tuple(body["days"])
    settings = _refused(lambda: save_settings(ints, body["url"], days))
    return jsonify({"webhook": _settings_json(settings)})
