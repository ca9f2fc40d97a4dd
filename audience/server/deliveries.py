"""``GET /v1/deliveries``: the node's deliveries (triggers, plans, journeys),
filtered by ``contact``, ``status`` and ``since`` (due at or after; ISO 8601
or epoch ms), latest ``limit`` (default 100) in the order recorded."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from audience.runtime.delivery import Delivery
from audience.runtime.delivery.model import STATUSES
from audience.runtime.evaluate import parse_as_of
from audience.server.bodies import query_int
from audience.server.context import current_node, requires
from audience.server.contract import Query, Values, accepts, choice, integer, text
from audience.server.errors import bad_request
from audience.server.evaluate import MAX_AS_OF_MS, MIN_AS_OF_MS, iso_ms

bp = Blueprint("deliveries", __name__)

MAX_LIMIT = 10_000
LIST = Query(
    {
        "contact": text(1000),
        "status": choice(*STATUSES, default=None),
        "since": text(64, description="due at or after: ISO 8601 or epoch ms"),
        "limit": integer(1, MAX_LIMIT, 100),
    }
)


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "contact_id": d.contact_id,
        "email": d.email,
        "channel": d.channel,
        "kind": d.kind,
        "status": d.status,
        "policy": d.policy,
        "cap": d.cap,
        "requested": iso_ms(d.requested_ms),
        "due": iso_ms(d.due_ms),
        "sent": None if d.sent_ms is None else iso_ms(d.sent_ms),
        "test": d.test,
        "source": d.source,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "payload": d.payload,
    }


def parse_time(value: str | int | None, what: str) -> int | None:
    """Epoch ms of a request's time (ISO 8601, or epoch ms as a number or digits)."""
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > 64:
            raise bad_request("invalid_request", f"{what!r} is longer than 64 characters")
        number = query_int(value)
        if number is not None:
            value = number
    try:
        ms = parse_as_of(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise bad_request("invalid_request", f"{what!r}: {exc}") from None
    if not MIN_AS_OF_MS <= ms <= MAX_AS_OF_MS:
        raise bad_request("invalid_request", f"{what!r} must fall between the years 1900 and 9999")
    return ms


@bp.get("/v1/deliveries")
@requires("read")
@accepts(query=LIST)
def list_deliveries(query: Values) -> Response:
    node = current_node()
    found = node.triggers.log.list(
        contact=query["contact"],
        status=query["status"],
        since_ms=parse_time(query["since"], "since"),
        limit=query["limit"],
        node=node.store.node,
    )
    return jsonify({"deliveries": [delivery_json(d) for d in found]})
