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
from audience.server.context import current_node, requires
from audience.server.contract import Body, Query, Values, accepts, choice, flag, text
from audience.server.errors import ApiError
from audience.server.evaluate import MAX_TEXT

bp = Blueprint("meta_syncs", __name__)
T = TypeVar("T")

_STATUS = {"no_sync": 404, "no_job": 404, "sync_exists": 409, "sync_busy": 409}
_NAME_LEN = 200
_EVERY = "'every N hours' or 'every N days'"
CREATE = Body(
    "SyncWrite",
    {
        "name": text(_NAME_LEN, required=True, min_len=1),
        "segment": text(
            MAX_TEXT, required=True, description="a saved segment's name, or a condition"
        ),
        "integration": text(_NAME_LEN, required=True, description="the connected ads account"),
        "email_field": text(_NAME_LEN, description="a string profile field holding emails"),
        "phone_field": text(_NAME_LEN, description="a string profile field holding phones"),
        "consent_field": text(_NAME_LEN, description="a bool profile field: true = consent"),
        "audience_id": text(_NAME_LEN, description="an existing custom audience (digits)"),
        "audience_name": text(_NAME_LEN, description="a custom audience to create"),
        "customer_file_source": choice(*SOURCES),
        "country_code": text(_NAME_LEN, default="1", description="for phones written without one"),
        "schedule": text(_NAME_LEN, description=_EVERY),
    },
)
RUN = Body("SyncRun", {"replace": flag(description="a full replace")}, optional=True)
SCHEDULE = Body(
    "SyncSchedule", {"every": text(_NAME_LEN, description=_EVERY + "; null stops repeating")}
)
SHOW = Query(
    {"platform": flag(description="also the audience's size and status from the platform")}
)


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
@accepts(CREATE)
def create_sync(body: Values) -> Response:
    spec = SyncSpec(node=current_node().store.node, **body)
    sync = _refused(_service().create, spec)
    resp = jsonify(sync_view(sync))
    resp.status_code = 201
    return resp


@bp.get("/v1/syncs/<name>")
@requires("read")
@accepts(query=SHOW)
def show_sync(name: str, query: Values) -> Response:
    """``?platform=true``: also the audience's size and status from the platform."""
    from audience.integrations.meta.graph import GraphError
    from audience.integrations.meta.sync.worker import platform_status
    from audience.server.meta_graph import graph_refused, request_graph

    svc = _service()
    sync = _sync(svc, name)
    jobs = svc.defs.jobs(sync.name, limit=1)
    out = {**sync_view(sync), "last_job": job_view(jobs[0]) if jobs else None}
    if query["platform"]:
        try:
            out["platform"] = platform_status(svc.root, request_graph(), svc.clock, sync)
        except GraphError as err:
            raise graph_refused(err) from None
    return jsonify(out)


@bp.delete("/v1/syncs/<name>")
@requires("write")
def delete_sync(name: str) -> Response:
    svc = _service()
    _sync(svc, name)
    _refused(svc.defs.delete, name)
    return jsonify({"deleted": name})


@bp.post("/v1/syncs/<name>/runs")
@requires("write")
@accepts(RUN)
def run_sync(name: str, body: Values) -> Response:
    svc = _service()
    _sync(svc, name)
    job, _ = _refused(svc.run, name, replace=body["replace"])
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
@accepts(SCHEDULE)
def schedule(name: str, body: Values) -> Response:
    svc = _service()
    _sync(svc, name)
    return jsonify(sync_view(_refused(svc.schedule, name, body["every"])))
