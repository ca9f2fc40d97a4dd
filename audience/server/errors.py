"""Every error the API returns is JSON: ``{"error": {"code", "message", "help", ...}}``.

DSL errors keep the error shape (docs/language/index.md#errors) (line, column, end_line, end_column,
plus ``errors`` with every diagnostic); HTTP errors (404, 405, 413, ...) and
the API's own refusals (``ApiError``) use the same envelope, so a client
never has to parse an HTML page.  Anything unexpected is logged and becomes a
JSON 500 (the tests show no request reaches it).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from audience.dsl.errors import DslError
from audience.runtime.shards.errors import NotOnShards

log = logging.getLogger("audience.server")

# werkzeug's names, as stable snake_case codes
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    410: "gone",
    411: "length_required",
    413: "too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "unprocessable",
    429: "too_many_requests",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}


class ApiError(Exception):
    """A refusal with a status, a stable ``code`` and a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        help: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.help = help
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {
            "error": {"code": self.code, "message": self.message, "help": self.help, **self.extra}
        }


def bad_request(code: str, message: str, help: str | None = None, **extra: Any) -> ApiError:
    return ApiError(400, code, message, help, **extra)


def error_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = HTTP_CODES.get(status, f"http_{status}")
    message = exc.description or exc.name
    if status == 413:
        message = "the request body is larger than this server accepts"
    # keep werkzeug's headers (Allow on a 405) but not its text/html content type
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    body = {"error": {"code": code, "message": message, "help": None}}
    return error_response(status, body, headers)


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.body(), exc.headers)


def _dsl_error(exc: DslError) -> Response:
    return error_response(400, exc.to_dict())


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    log.exception("unhandled error")
    body = {"error": {"code": "internal_error", "message": "internal server error", "help": None}}
    return error_response(500, body)


def _not_on_shards(exc: NotOnShards) -> Response:
    body = {"error": {"code": "not_on_sharded_node", "message": str(exc), "help": None}}
    return error_response(501, body)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(NotOnShards, _not_on_shards)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(DslError, _dsl_error)
    app.register_error_handler(Exception, _unexpected)
