"""``POST /v1/events``: a batch of events (JSON array, NDJSON or Arrow IPC).

The answer counts what was accepted, lists each rejected record with its
0-based index in the body (array position, NDJSON line, Arrow row), the
field and the reason, and is 200 even when some records were rejected (the
rest are stored, SPEC section 1).  Each ingest is recorded against the
source that made it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from audience.runtime.store import IngestReport, StoreError
from audience.server.bodies import Records, records
from audience.server.context import current_node, current_source, requires, state
from audience.server.errors import bad_request

bp = Blueprint("events", __name__)


def ingest(kind: str, recs: Records) -> tuple[IngestReport, dict[str, Any]]:
    """Ingest ``recs`` as ``kind`` ("events" or "profiles") into the request's
    node; the report and the JSON answer."""
    store = current_node().store
    report = IngestReport()
    if len(recs.source):
        try:
            if kind == "events":
                report = store.ingest_events(recs.source)
            else:
                report = store.ingest_profiles(recs.source)
        except StoreError as exc:
            raise bad_request("bad_records", str(exc)) from None
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
    return report, body


@bp.post("/v1/events")
@requires("write")
def post_events() -> Response:
    _, body = ingest("events", records())
    return jsonify(body)
