"""The trend for recipient domains over HTTP (docs/report.md):

- ``GET /v1/reports/domains``: the report as JSON;
- ``GET /v1/reports/domains.html``: the dashboard, a self-contained page,
  sent with a Content-Security-Policy that lets it fetch nothing.

Both read the token's node and take the CLI's options as query parameters:
``top`` (10 or 100) or ``domain`` (repeated), ``by``, ``months``,
``mail_group``, ``metric`` (repeated or comma-separated), ``as_of``, ``tz``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from audience.runtime.report import Report, ReportError, ReportParams, build_report
from audience.runtime.report.html import CSP, dashboard
from audience.runtime.report.params import parse_metrics
from audience.runtime.triggers.clock import now_ms
from audience.server.bodies import query_int
from audience.server.context import current_node, requires
from audience.server.deliveries import parse_time
from audience.server.errors import bad_request

bp = Blueprint("reports", __name__)

PARAMS = {"top", "domain", "by", "months", "mail_group", "metric", "as_of", "tz"}


def _report() -> Report:
    args = request.args
    unknown = sorted(set(args) - PARAMS)
    if unknown:
        raise bad_request("invalid_request", f"unknown query parameter {unknown[0]!r}")
    domains = tuple(args.getlist("domain"))
    top = _int("top", None)
    if domains and top is not None:
        raise bad_request("invalid_request", "give 'top' or 'domain', not both")
    as_of = parse_time(args.get("as_of"), "as_of")
    try:
        params = ReportParams(
            as_of_ms=now_ms() if as_of is None else as_of,
            top=None if domains else (top or 10),
            domains=domains,
            by=args.get("by", "week"),
            months=_int("months", 6) or 0,
            tz=args.get("tz", "UTC"),
            mail_group=args.get("mail_group"),
            metrics=parse_metrics(args.getlist("metric")),
        )
    except ReportError as exc:
        raise bad_request("invalid_request", str(exc)) from None
    try:
        return build_report(current_node().store.snapshot(), params)
    except ReportError as exc:
        raise bad_request("invalid_request", str(exc)) from None


def _int(name: str, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    value = query_int(raw)
    if value is None:
        raise bad_request("invalid_request", f"{name!r} must be an integer")
    return value


@bp.get("/v1/reports/domains")
@requires("read")
def domains_json() -> Response:
    return jsonify(_report().to_json())


@bp.get("/v1/reports/domains.html")
@requires("read")
def domains_html() -> Response:
    page = dashboard(_report())
    return Response(
        page,
        200,
        mimetype="text/html",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store, private"},
    )
