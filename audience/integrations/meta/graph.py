"""A thin Graph API client over ``requests``: versioned URLs from configuration
(so tests point it at a local server), error bodies as typed errors, retries with
backoff on transient and rate-limit codes, cursor paging and ``appsecret_proof``.

The platform answers most errors with HTTP 400 and an ``error`` object: the
``code`` (not the HTTP status) says what to do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v21.0"

TOKEN_INVALID_CODE = 190
TRANSIENT_CODES = frozenset({1, 2})
# app, user, page/custom-audience and ad-account limits, lead gen throttles
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80003, 80004, 80005})
USAGE_HEADERS = ("X-App-Usage", "X-Business-Use-Case-Usage", "X-Ad-Account-Usage")


@dataclass(frozen=True)
class GraphConfig:
    base_url: str = DEFAULT_BASE_URL
    version: str = DEFAULT_VERSION
    app_id: str | None = None
    app_secret: str | None = None
    timeout_s: float = 30.0
    max_retries: int = 5
    backoff_s: float = 1.0  # first wait; doubles on every retry
    max_backoff_s: float = 300.0
    jitter: float = 0.25  # up to this fraction added at random, so clients do not retry in step

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{self.version}/{path.lstrip('/')}"

    @property
    def app_token(self) -> str | None:
        """The app access token (``id|secret``) debug_token wants, when configured."""
        if self.app_id and self.app_secret:
            return f"{self.app_id}|{self.app_secret}"
        return None


# the environment variables every Meta component reads (server, workers, CLI)
_ENV: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("base_url", "AUDIENCE_META_GRAPH_URL", str),
    ("version", "AUDIENCE_META_GRAPH_VERSION", str),
    ("app_id", "AUDIENCE_META_APP_ID", str),
    ("app_secret", "AUDIENCE_META_APP_SECRET", str),
    ("max_retries", "AUDIENCE_META_MAX_RETRIES", int),
    ("backoff_s", "AUDIENCE_META_BACKOFF_S", float),
)


def graph_config_from_env(**defaults: Any) -> GraphConfig:
    """The Graph API's address, version, app credentials and retries from
    AUDIENCE_META_*; ``defaults`` are the caller's values for the variables left
    unset (an unset or blank variable keeps the default)."""
    fields = dict(defaults)
    for name, var, kind in _ENV:
        raw = os.environ.get(var, "").strip()
        if not raw:
            continue
        try:
            fields[name] = kind(raw)
        except ValueError:
            raise ValueError(f"{var}={raw!r}: not a number") from None
    return GraphConfig(**fields)


class GraphError(Exception):
    """An error answered by the platform (or no answer at all: ``code`` 0)."""

    def __init__(
        self,
        message: str,
        *,
        code: int = 0,
        subcode: int | None = None,
        type: str | None = None,
        fbtrace_id: str | None = None,
        http_status: int | None = None,
        transient: bool = False,
        usage: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.type = type
        self.fbtrace_id = fbtrace_id
        self.http_status = http_status
        self.transient = transient
        self.usage = usage or {}

    def __str__(self) -> str:
        sub = f"/{self.subcode}" if self.subcode is not None else ""
        trace = f" (fbtrace_id {self.fbtrace_id})" if self.fbtrace_id else ""
        return f"Graph API error {self.code}{sub}: {self.message}{trace}"


class TokenInvalid(GraphError):
    """Code 190: the token is expired, revoked or otherwise dead; re-authorize."""


class RateLimited(GraphError):
    """A rate-limit code (4, 17, 32, 613, 8000x) still failing after the retries."""


class Unavailable(GraphError):
    """A transient error, timeout or dropped connection still failing after the retries."""


def appsecret_proof(token: str, app_secret: str) -> str:
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def parse_usage(headers: Any) -> dict[str, Any]:
    """The usage headers (JSON values) present in ``headers``; unreadable ones kept as text."""
    usage: dict[str, Any] = {}
    for name in USAGE_HEADERS:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            usage[name] = json.loads(raw)
        except ValueError:
            usage[name] = raw
    return usage


def regain_after_s(usage: dict[str, Any]) -> float | None:
    """The longest ``estimated_time_to_regain_access`` (minutes) in the business use case
    header, in seconds; None when absent."""
    buc = usage.get("X-Business-Use-Case-Usage")
    if not isinstance(buc, dict):
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in buc.values()
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict)
    ]
    known = [m for m in minutes if isinstance(m, int | float) and m > 0]
    return max(known) * 60.0 if known else None


def error_from_response(resp: requests.Response, usage: dict[str, Any]) -> GraphError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return GraphError(
            f"HTTP {resp.status_code} without an error body",
            http_status=resp.status_code,
            transient=resp.status_code >= 500,
            usage=usage,
        )
    code = int(err.get("code") or 0)
    subcode = err.get("error_subcode")
    kwargs: dict[str, Any] = {
        "code": code,
        "subcode": int(subcode) if subcode is not None else None,
        "type": err.get("type"),
        "fbtrace_id": err.get("fbtrace_id"),
        "http_status": resp.status_code,
        "transient": bool(err.get("is_transient")) or code in TRANSIENT_CODES,
        "usage": usage,
    }
    message = str(err.get("message") or "")
    if code == TOKEN_INVALID_CODE:
        return TokenInvalid(message, **kwargs)
    if code in RATE_LIMIT_CODES:
        return RateLimited(message, **kwargs)
    return GraphError(message, **kwargs)


def _retryable(err: GraphError) -> bool:
    return isinstance(err, RateLimited | Unavailable) or err.transient


@dataclass
class GraphClient:
    """Calls as one access token.  ``sleep`` is injected so tests never wait."""

    config: GraphConfig
    access_token: str | None = None
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = random.random  # in [0, 1): the jitter's share
    session: requests.Session = field(default_factory=requests.Session)
    last_usage: dict[str, Any] = field(default_factory=dict)
    retries: int = 0  # retries made so far (for status and tests)

    def get(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.request("GET", path, params=params, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.request("POST", path, data=data, **kw)

    def delete(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.request("DELETE", path, data=data, **kw)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        token: str | None = None,
        json_body: bool = False,
    ) -> Any:
        """One call, retried on transient and rate-limit errors; the decoded JSON answer.
        ``json_body``: ``data`` goes as one JSON document rather than form fields (the
        platform takes both; megabytes of upload payload encode far faster so)."""
        url = path if path.startswith(("http://", "https://")) else self.config.url(path)
        query = self._auth(dict(params or {}), token)
        form: dict[str, Any] | bytes | None = None
        if data and json_body:
            form = json.dumps(data, separators=(",", ":")).encode()
        elif data:
            form = {k: _form_value(v) for k, v in data.items()}
        attempt = 0
        while True:
            try:
                return self._once(method, url, query, form)
            except GraphError as err:
                if not _retryable(err) or attempt >= self.config.max_retries:
                    raise
                self.sleep(self._wait_s(err, attempt))
                attempt += 1
                self.retries += 1

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a paged edge, following ``paging.cursors.after`` while
        ``paging.next`` is present."""
        query = dict(params or {})
        while True:
            body = self.get(path, query)
            yield from body.get("data", [])
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return
            query["after"] = after

    def _auth(self, query: dict[str, Any], token: str | None) -> dict[str, Any]:
        tok = token or self.access_token
        if tok and "access_token" not in query:
            query["access_token"] = tok
            if self.config.app_secret and "|" not in tok:
                query["appsecret_proof"] = appsecret_proof(tok, self.config.app_secret)
        return {k: _form_value(v) for k, v in query.items()}

    def _once(
        self, method: str, url: str, query: dict[str, Any], form: dict[str, Any] | bytes | None
    ) -> Any:
        headers = {"Content-Type": "application/json"} if isinstance(form, bytes) else None
        try:
            resp = self.session.request(
                method, url, params=query, data=form, headers=headers, timeout=self.config.timeout_s
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Unavailable(f"no answer from {url.split('?')[0]}: {exc}") from exc
        usage = parse_usage(resp.headers)
        if usage:
            self.last_usage = usage
        if resp.status_code >= 400:
            err = error_from_response(resp, usage)
            if err.transient and not isinstance(err, RateLimited | TokenInvalid):
                err = Unavailable(
                    err.message,
                    code=err.code,
                    subcode=err.subcode,
                    type=err.type,
                    fbtrace_id=err.fbtrace_id,
                    http_status=err.http_status,
                    transient=True,
                    usage=usage,
                )
            raise err
        try:
            return resp.json()
        except ValueError as exc:
            raise Unavailable(f"unreadable answer from {url.split('?')[0]}") from exc

    def _wait_s(self, err: GraphError, attempt: int) -> float:
        cfg = self.config
        exp = cfg.backoff_s * (2**attempt) * (1.0 + cfg.jitter * self.rand())
        regain = regain_after_s(err.usage) if isinstance(err, RateLimited) else None
        return min(max(exp, regain or 0.0), cfg.max_backoff_s)


def _form_value(v: Any) -> Any:
    # Graph takes structured fields as JSON strings inside form or query fields
    return json.dumps(v, separators=(",", ":")) if isinstance(v, dict | list) else v
