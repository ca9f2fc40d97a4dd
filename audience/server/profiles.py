"""Profiles: ``POST /v1/profiles`` (a batch, as events), ``GET`` and ``PATCH
/v1/profiles/{id}``.

``GET`` reads the current store version and decodes the contact's row.  A
``PATCH`` sets the fields it names (docs/schema.md: a profile upsert; null
leaves a field as it was) and is checked against the schema before anything
is written, so a bad one is a 400 that leaves the store unchanged.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from flask import Blueprint, Response, jsonify

from audience.runtime.store.ingest import INT64_MAX
from audience.runtime.store.sources import open_source
from audience.runtime.store.validate import validate_profiles
from audience.server.bodies import Records, records
from audience.server.context import current_node, requires
from audience.server.contract import Body, Values, accepts
from audience.server.errors import ApiError, bad_request
from audience.server.evaluate import iso_ms
from audience.server.events import RECORDS, ingest
from audience.server.nodes import NodeRuntime
from audience.snapshot import Column, Snapshot, dictionary_key

bp = Blueprint("profiles", __name__)

MAX_ID = 1000
# the profile's fields are checked against the node's schema, as an upsert's
PATCH = Body("ProfilePatch", {}, description="profile fields to set", open=True)


@bp.post("/v1/profiles")
@requires("write")
@accepts(RECORDS)
def post_profiles() -> Response:
    _, body = ingest("profiles", records())
    return jsonify(body)


@bp.get("/v1/profiles/<path:contact_id>")
@requires("read")
def get_profile(contact_id: str) -> Response:
    return jsonify(_profile(current_node(), contact_id))


@bp.patch("/v1/profiles/<path:contact_id>")
@requires("write")
@accepts(PATCH)
def patch_profile(contact_id: str, body: Values) -> Response:
    if len(contact_id) > MAX_ID:
        raise bad_request("invalid_request", f"a contact id is at most {MAX_ID} characters")
    given = body.get("contact_id", contact_id)
    if str(given) != contact_id:
        raise bad_request("invalid_request", "'contact_id' in the body differs from the URL")
    record = {**body, "contact_id": contact_id}
    _check(current_node(), record)
    ingest("profiles", Records([record], [0]))
    return jsonify(_profile(current_node(), contact_id))


def _check(node: NodeRuntime, record: dict[str, Any]) -> None:
    """Validate one profile record as the store would, without writing it."""
    schema = node.store.schema
    src = open_source([record], {"contact_id": "id", **schema.profile})
    try:
        batches = list(src.batches)
    except RecursionError:  # nested objects are flattened recursively
        raise bad_request("bad_json", "the profile nests too deeply") from None
    for batch in batches:
        checked = validate_profiles(batch.table, schema, batch.pre)
        for fld, reason in checked.problems.values():
            raise bad_request("invalid_profile", reason, field=fld)


def _profile(node: NodeRuntime, contact_id: str) -> dict[str, Any]:
    snap, index, version = node.contact_home(contact_id)
    pos = index.find(snap, contact_id)
    if pos is None:
        raise ApiError(404, "not_found", f"no contact {contact_id!r} in this node")
    first = int(snap.first_event_ts[pos])
    return {
        "contact_id": contact_id,
        "has_profile": bool(snap.has_profile[pos]),
        "first_event": None if first == INT64_MAX else iso_ms(first),
        "profile": {
            name: _value(snap, name, ftype, snap.profile[name], pos)
            for name, ftype in snap.schema.profile.items()
        },
        "version": version,
    }


def _value(snap: Snapshot, name: str, ftype: str, col: Column, i: int) -> Any:
    if col.valid is not None and not col.valid[i]:
        return None
    if col.kind == "list":
        assert col.offsets is not None
        codes = col.values[col.offsets[i] : col.offsets[i + 1]].tolist()
        words = snap.dictionaries[dictionary_key("profile", name)].values
        return [words[c] for c in codes]
    raw = col.values[i]
    if col.kind == "code":
        return snap.dictionaries[dictionary_key("profile", name)].values[int(raw)]
    if col.kind == "bool":
        return bool(raw)
    if col.kind == "int":
        return int(raw)
    if col.kind == "float":
        f = float(raw)
        return f if math.isfinite(f) else None
    if col.kind == "date":
        try:
            return (dt.date(1970, 1, 1) + dt.timedelta(days=int(raw))).isoformat()
        except OverflowError:
            return int(raw)
    if col.kind == "datetime":
        try:
            return iso_ms(int(raw))
        except OverflowError:
            return int(raw)
    return str(raw)
