"""``POST /v1/events``: a batch of events (JSON array, NDJSON or Arrow IPC).

The answer counts what was accepted, lists each rejected record with its
0-based index in the body (array position, NDJSON line, Arrow row), the
field and the reason, and what the accepted events fired (triggers, with the
deliveries they recorded); it is 200 even when some records were rejected
(the rest are stored, docs/schema.md).  Each ingest is recorded against the
source that made it.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify

from audience.runtime.store import IngestReport, StoreError
from audience.runtime.triggers import BatchReport
from audience.server.bodies import (
    ARROW_FILE,
    ARROW_STREAM,
    JSON_TYPES,
    NDJSON_TYPES,
    Records,
    records,
)
from audience.server.context import current_node, current_source, requires, state
from audience.server.contract import Raw, accepts
from audience.server.deliveries import delivery_json
from audience.server.errors import bad_request
from audience.server.evaluate import iso_ms

bp = Blueprint("events", __name__)

_BINARY = {"type": "string", "format": "binary"}
# read by bodies.records(): a batch in any of these kinds
RECORDS = Raw(
    {
        "required": True,
        "content": {
            JSON_TYPES[0]: {
                "schema": {
                    "description": "records as JSON objects (or one object); events: id, "
                    "contact_id, type, ts, context and the type's properties (top level or "
                    "under 'properties'), profiles: contact_id and profile fields "
                    "(docs/schema.md)",
                    "oneOf": [{"type": "array", "items": {}}, {"type": "object"}],
                }
            },
            NDJSON_TYPES[0]: {"schema": {"type": "string"}},
            ARROW_STREAM: {"schema": _BINARY},
            ARROW_FILE: {"schema": _BINARY},
        },
    }
)


def ingest(kind: str, recs: Records) -> tuple[IngestReport, dict[str, Any]]:
    """Ingest ``recs`` as ``kind`` ("events" or "profiles") into the request's
    node; the report and the JSON answer."""
    node = current_node()
    store = node.store
    report = IngestReport()
    if len(recs.source):
        try:
            if kind == "events":
                report = store.ingest_events(recs.source)
            else:
                report = store.ingest_profiles(recs.source)
        except StoreError as exc:
            raise bad_request("bad_records", str(exc)) from None
        except RecursionError:  # the store flattens nested objects recursively
            raise bad_request("bad_json", "a record nests too deeply") from None
    rejects = list(recs.refused)
    rejects += [
        {"index": recs.index_of(r.line), "field": r.field, "reason": r.reason}
        for r in report.rejects
    ]
    rejects.sort(key=lambda r: int(r["index"]))
    state().sources.record_write(
        current_source(), kind, report.accepted, len(rejects), report.duplicates
    )
    body: dict[str, Any] = {
        "accepted": report.accepted,
        "rejected": len(rejects),
        "rejects": rejects,
    }
    if kind == "events":
        body["duplicates"] = report.duplicates
        body["triggers"] = _triggers(report.triggers)
    return report, body


def _triggers(report: BatchReport | None) -> dict[str, Any]:
    """What the ingest's events fired (docs/language/triggers.md), with the deliveries made."""
    if report is None:
        return {"matched": 0, "fired": 0, "too_old": {}, "firings": [], "deliveries": []}
    return {
        "matched": report.matched,
        "fired": report.fired,
        # per trigger: events dated before its valid-from, which fire nothing
        "too_old": dict(report.too_old),
        **({"note": note} if (note := report.too_old_note()) else {}),
        "firings": [
            {
                "trigger": f.trigger,
                "contact_id": f.contact_id,
                "event": f.event_key,
                "ts": iso_ms(f.ts_ms),
                "outcome": json.loads(f.outcome),
            }
            for f in report.firings
        ],
        "deliveries": [delivery_json(d) for d in report.deliveries],
    }


@bp.post("/v1/events")
@requires("write")
@accepts(RECORDS)
def post_events() -> Response:
    _, body = ingest("events", records())
    return jsonify(body)
