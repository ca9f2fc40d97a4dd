"""The links of sent messages (server/tracking.py: no token, no JSON) and the
domain report (server/reports.py): their part of the OpenAPI document."""

from __future__ import annotations

from typing import Any

from audience.server import openapi_parts as oa

SCHEMAS: dict[str, Any] = {
    "DomainReport": {
        "type": "object",
        "required": ["as_of", "by", "months", "periods", "domains", "rows", "anomalies"],
        "properties": {
            "as_of": {"type": "string"},
            "by": {"type": "string"},
            "months": {"type": "integer"},
            "periods": {"type": "array", "items": {"type": "object"}},
            "domains": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "object"}},
            "anomalies": {"type": "array", "items": {"type": "object"}},
        },
    },
}

_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "a signed token from a sent message",
    "schema": {"type": "string", "pattern": "^[^/]+$"},
}
_TRACKING_404 = {
    "404": {
        "description": "a forged, altered or unknown token: nothing recorded, no redirect",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}
_HTML_PAGE = {"content": {"text/html": {"schema": {"type": "string"}}}}


def paths() -> dict[str, Any]:
    def page(description: str) -> dict[str, Any]:
        return {"200": {"description": description, **_HTML_PAGE}}

    return {
        "/v1/reports/domains": {
            "get": oa.op(
                "The trend for recipient domains: rates per domain and period, anomalies",
                {**oa.ok("DomainReport"), **oa.errors(400, *oa.AUTH)},
            )
        },
        "/v1/reports/domains.html": {
            "get": oa.op(
                "The same report as a self-contained HTML dashboard",
                {**page("the page"), **oa.errors(400, *oa.AUTH)},
            )
        },
        "/t/c/{token}": {
            "parameters": [_TOKEN],
            "get": oa.op(
                "A click: redirect to the link as sent, record email_clicked",
                {"302": {"description": "to the link"}, **_TRACKING_404},
                security=[],
            ),
        },
        "/t/o/{token}": {
            "parameters": [_TOKEN],
            "get": oa.op(
                "An open: a 1x1 GIF, record email_opened",
                {
                    "200": {
                        "description": "the pixel",
                        "content": {"image/gif": {"schema": oa.BINARY}},
                    },
                    **_TRACKING_404,
                },
                security=[],
            ),
        },
        "/t/u/{token}": {
            "parameters": [_TOKEN],
            "get": oa.op(
                "The unsubscribe page (records nothing)",
                {**page("a page with a button"), **_TRACKING_404},
                security=[],
            ),
            "post": oa.op(
                "Unsubscribe (RFC 8058 one-click): the address gets no more marketing email",
                {**page("the confirmation page"), **_TRACKING_404},
                security=[],
            ),
        },
    }
