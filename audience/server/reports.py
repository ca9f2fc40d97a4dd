"""The trend for recipient domains over HTTP (docs/report.md):

- ``GET /v1/reports/domains``: the report as JSON;
- ``GET /v1/reports/domains.html``: the dashboard, a self-contained page,
  sent with a Content-Security-Policy that lets it fetch nothing.

Both read the token's node and take the CLI's options as query parameters:
``top`` (10 or 100) or ``domain`` (repeated), ``by``, ``months``,
``mail_group``, ``metric`` (repeated or comma-separated), ``as_of``, ``tz``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from audience.runtime.report import Report, ReportError, ReportParams, build_report
from audience.runtime.report.html import CSP, dashboard
from audience.runtime.report.params import METRICS, PERIODS, SPANS, TOPS, parse_metrics
from audience.runtime.triggers.clock import now_ms
from audience.server.context import current_node, requires
from audience.server.contract import Query, Values, accepts, choice, field, text
from audience.server.deliveries import parse_time
from audience.server.errors import bad_request

bp = Blueprint("reports", __name__)


def _repeated(longest: int, description: str) -> Any:
    item = {"type": "string", "maxLength": longest}
    schema = {"type": "array", "items": item, "maxItems": 100, "description": description}
    return field(schema, f"takes at most 100 values of {longest} characters", default=[])


PARAMS = Query(
    {
        "top": choice(*TOPS, default=None, description="the busiest domains (default 10)"),
        "domain": _repeated(253, "a domain to show (repeatable; instead of top)"),
        "by": choice(*PERIODS, default="week"),
        "months": choice(*SPANS, default=6),
        "mail_group": text(200, min_len=1),
        "metric": _repeated(1000, "repeatable or comma-separated: " + ", ".join(METRICS)),
        "as_of": text(64, description="ISO 8601 or epoch ms; default now"),
        "tz": text(64, default="UTC", description="the periods' time zone"),
    }
)


def _report(query: Values) -> Report:
    domains = tuple(query["domain"])
    top = query["top"]
    if domains and top is not None:
        raise bad_request("invalid_request", "give 'top' or 'domain', not both")
    as_of = parse_time(query["as_of"], "as_of")
    try:
        params = ReportParams(
            as_of_ms=now_ms() if as_of is None else as_of,
            top=None if domains else (top or TOPS[0]),
            domains=domains,
            by=query["by"],
            months=query["months"],
            tz=query["tz"],
            mail_group=query["mail_group"],
            metrics=parse_metrics(query["metric"]),
        )
    except ReportError as exc:
        raise bad_request("invalid_request", str(exc)) from None
    try:
        return build_report(current_node().store.snapshot(), params)
    except ReportError as exc:
        raise bad_request("invalid_request", str(exc)) from None


@bp.get("/v1/reports/domains")
@requires("read")
@accepts(query=PARAMS)
def domains_json(query: Values) -> Response:
    return jsonify(_report(query).to_json())


@bp.get("/v1/reports/domains.html")
@requires("read")
@accepts(query=PARAMS)
def domains_html(query: Values) -> Response:
    page = dashboard(_report(query))
    return Response(
        page,
        200,
        mimetype="text/html",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store, private"},
    )
