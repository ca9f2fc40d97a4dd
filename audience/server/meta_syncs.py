"""Custom audience syncs over HTTP (docs/integrations/meta-sync.md): ``/v1/syncs``.

A sync belongs to the node of the token that created it; the other nodes do not
see it.  A run is queued and answered ``202`` with its job: ``audience syncs
work`` or ``audience scheduler`` runs it.  Refusals carry the service's code:
404 ``no_sync`` (and ``not_found``), 409 ``sync_exists`` / ``sync_busy``, 400 for
the rest (``no_integration``, ``no_field``, ``field_not_string``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify

from audience.integrations.meta.sync.definitions import SOURCES, Sync, SyncError
from audience.integrations.meta.sync.service import SyncService, SyncSpec, job_view, sync_view
from audience.server.bodies import Fields, json_object
from audience.server.context import current_node, requires
from audience.server.errors import ApiError
from audience.server.evaluate import MAX_TEXT

bp = Blueprint("meta_syncs", __name__)
T = TypeVar("T")

_STATUS = {"no_sync": 404, "no_job": 404, "sync_exists": 409, "sync_busy": 409}
_NAME_LEN = 200
_CREATE_FIELDS = {
    "name",
    "segment",
    "integration",
    "email_field",
    "phone_field",
    "consent_field",
    "audience_id",
    "audience_name",
    "customer_file_source",
    "country_code",
    "schedule",
}


def _service() -> SyncService:
    store = current_node().store
    assert store.path is not None
    return SyncService(Path(store.path), _clock())


def _clock() -> Callable[[], int]:
    from audience.runtime.plans.clock import wall_clock

    return wall_clock


def _refused(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except SyncError as err:
        raise ApiError(_STATUS.get(err.code, 400), err.code, str(err)) from None


def _sync(svc: SyncService, name: str) -> Sync:
    """The sync NAME of the token's node (another node's is not found)."""
    sync = _refused(svc.defs.get, name)
    if sync.node != current_node().store.node:
        raise ApiError(404, "no_sync", f"no sync named {name!r}")
    return sync


@bp.get("/v1/syncs")
@requires("read")
def list_syncs() -> Response:
    node = current_node().store.node
    syncs = [sync_view(s) for s in _service().defs.all() if s.node == node]
    return jsonify({"syncs": syncs})


@bp.post("/v1/syncs")
@requires("write")
def create_sync() -> Response:
    f = Fields(json_object(), _CREATE_FIELDS)
    text = {k: f.text(k, max_len=_NAME_LEN) for k in _CREATE_FIELDS - {"segment"}}
    source = f.choice("customer_file_source", SOURCES)
    spec = SyncSpec(
        name=text["name"] or "",
        node=current_node().store.node,
        segment=f.text("segment", required=True, max_len=MAX_TEXT) or "",
        integration=text["integration"] or "",
        email_field=text["email_field"],
        phone_field=text["phone_field"],
        consent_field=text["consent_field"],
        audience_id=text["audience_id"],
        audience_name=text["audience_name"],
        customer_file_source=source,
        country_code=text["country_code"] or "1",
        schedule=text["schedule"],
    )
    if not spec.name:
        raise ApiError(400, "invalid_request", "'name' is required")
    sync = _refused(_service().create, spec)
    resp = jsonify(sync_view(sync))
    resp.status_code = 201
    return resp


@bp.get("/v1/syncs/<name>")
@requires("read")
def show_sync(name: str) -> Response:
    svc = _service()
    sync = _sync(svc, name)
    jobs = svc.defs.jobs(sync.name, limit=1)
    return jsonify({**sync_view(sync), "last_job": job_view(jobs[0]) if jobs else None})


@bp.delete("/v1/syncs/<name>")
@requires("write")
def delete_sync(name: str) -> Response:
    svc = _service()
    _sync(svc, name)
    _refused(svc.defs.delete, name)
    return jsonify({"deleted": name})


@bp.post("/v1/syncs/<name>/runs")
@requires("write")
def run_sync(name: str) -> Response:
    f = Fields(json_object() if _has_body() else {}, {"replace"})
    svc = _service()
    _sync(svc, name)
    job, _ = _refused(svc.run, name, replace=f.flag("replace"))
    resp = jsonify(job_view(job))
    resp.status_code = 202
    resp.headers["Location"] = f"/v1/syncs/{name}/runs/{job.id}"
    return resp


@bp.get("/v1/syncs/<name>/runs")
@requires("read")
def history(name: str) -> Response:
    svc = _service()
    sync = _sync(svc, name)
    return jsonify({"runs": [job_view(j) for j in svc.defs.jobs(sync.name)]})


@bp.get("/v1/syncs/<name>/runs/<job_id>")
@requires("read")
def show_run(name: str, job_id: str) -> Response:
    svc = _service()
    sync = _sync(svc, name)
    job = (
        _refused(svc.defs.job, int(job_id))
        if job_id.isascii() and job_id.isdigit() and len(job_id) < 19
        else None
    )
    if job is None or job.sync_id != sync.id:
        raise ApiError(404, "no_job", f"sync {name!r} has no job {job_id}")
    return jsonify(job_view(job))


@bp.put("/v1/syncs/<name>/schedule")
@requires("write")
def schedule(name: str) -> Response:
    f = Fields(json_object(), {"every"})
    every = f.text("every", max_len=_NAME_LEN)
    svc = _service()
    _sync(svc, name)
    return jsonify(sync_view(_refused(svc.schedule, name, every)))


def _has_body() -> bool:
    from flask import request

    return bool(request.get_data(cache=True))
