"""A stateful fake Graph API on 127.0.0.1 (stdlib ``ThreadingHTTPServer`` in a thread),
speaking the documented protocol for what the client uses: ``debug_token``,
``oauth/access_token`` (fb_exchange_token), error bodies, cursor paging and
injected faults.

Extending it: register a handler with ``fake.route(method, pattern, handler)``;
``pattern`` is a regex over the path after the version, the handler gets a
``Call`` and returns ``(status, body)`` or raises ``Fail``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

VERSION = "v21.0"
APP_ID = "1234567890"
APP_SECRET = "fake-app-secret"
UNKNOWN_OBJECT = (100, 33)  # "Object with ID ... does not exist"


@dataclass
class Token:
    token: str
    expires_at: int  # unix seconds; 0 = never
    is_valid: bool = True
    scopes: tuple[str, ...] = ("ads_management", "leads_retrieval")
    user_id: str = "10001"
    type: str = "USER"
    data_access_expires_at: int = 0
    issued_at: int = 0


@dataclass
class Call:
    method: str
    path: str  # after the version, no leading slash
    params: dict[str, str]  # query and form fields merged (form wins)
    body: bytes
    headers: dict[str, str]
    match: re.Match[str] | None = None

    def json_field(self, name: str) -> Any:
        raw = self.params.get(name)
        return json.loads(raw) if raw is not None else None


class Fail(Exception):
    """Raised by a handler: answered as a Graph error body."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        status: int = 400,
        type: str = "OAuthException",
        transient: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.subcode, self.status = code, message, subcode, status
        self.type, self.transient, self.headers = type, transient, headers or {}

    def body(self, trace: str) -> dict[str, Any]:
        err: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "code": self.code,
            "fbtrace_id": trace,
        }
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        if self.transient is not None:
            err["is_transient"] = self.transient
        return {"error": err}


# a fault: an error to answer, "drop" (close the connection without answering) or
# "hang" (answer nothing until the server stops: the client times out)
Fault = Fail | str
Handler = Callable[[Call], tuple[int, Any]]


@dataclass
class FakeGraph:
    app_id: str = APP_ID
    app_secret: str = APP_SECRET
    version: str = VERSION
    now: Callable[[], int] = lambda: 0  # unix seconds, for tokens made by exchange
    tokens: dict[str, Token] = field(default_factory=dict)
    collections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    # faults answered, in order, by calls whose path matches the key regex
    faults: list[tuple[str, Fault]] = field(default_factory=list)
    require_proof: bool = False
    exchange_expires_in: int = 60 * 86400
    lock: threading.Lock = field(default_factory=threading.Lock)
    # "hang" faults wait on this (set when the server stops) so clients time out
    release: threading.Event = field(default_factory=threading.Event)
    _routes: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
    _traces: int = 0

    def __post_init__(self) -> None:
        self.route("GET", r"debug_token", self._debug_token)
        self.route("GET", r"oauth/access_token", self._exchange)
        self.route("GET", r"me", self._me)

    # ---- set-up -------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern + r"\Z"), handler))

    def add_token(self, token: str, **kw: Any) -> Token:
        kw.setdefault("expires_at", self.now() + 60 * 86400)
        t = Token(token, **kw)
        self.tokens[token] = t
        return t

    def fail_next(self, path_regex: str, *faults: Fault) -> None:
        self.faults.extend((path_regex, f) for f in faults)

    def rate_limit(self, code: int = 17, regain_minutes: int | None = None) -> Fail:
        headers = {}
        if regain_minutes is not None:
            usage = {
                "act_1": [
                    {
                        "type": "ads_management",
                        "call_count": 100,
                        "estimated_time_to_regain_access": regain_minutes,
                    }
                ]
            }
            headers["X-Business-Use-Case-Usage"] = json.dumps(usage)
        return Fail(code, "User request limit reached", type="OAuthException", headers=headers)

    # ---- dispatch -----------------------------------------------------------
    def handle(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.calls.append(call)
            fault = self._take_fault(call.path)
            self._traces += 1
            trace = f"Atrace{self._traces}"
        try:
            if isinstance(fault, Fail):
                raise fault
            self._authorize(call)
            unknown: Fail | None = None
            for method, pattern, handler in self._routes:
                m = pattern.match(call.path)
                if m and method == call.method:
                    call.match = m
                    try:
                        status, body = handler(call)
                    except Fail as f:
                        # an audience id and a lead id are both numbers: an object one
                        # part does not know (100/33) may be another part's
                        if (f.code, f.subcode) != UNKNOWN_OBJECT:
                            raise
                        unknown = unknown or f
                        continue
                    return status, body, {}
            if unknown is not None:
                raise unknown
            raise Fail(100, f"Unknown path components: /{call.path}", type="GraphMethodException")
        except Fail as f:
            return f.status, f.body(trace), f.headers

    def _take_fault(self, path: str, network: bool = False) -> Fault | None:
        """The first fault for ``path``, taken; with ``network``, only when it is a
        "drop" or "hang" (those happen before dispatch, error faults in handle())."""
        for i, (regex, fault) in enumerate(self.faults):
            if re.fullmatch(regex, path):
                if network and fault not in ("drop", "hang"):
                    return None
                del self.faults[i]
                return fault
        return None

    def _authorize(self, call: Call) -> None:
        token = call.params.get("access_token")
        if call.path == "oauth/access_token":
            return
        if token is None:
            raise Fail(104, "An access token is required to request this resource.")
        if token == f"{self.app_id}|{self.app_secret}":
            return
        t = self.tokens.get(token)
        if t is None or not t.is_valid:
            raise Fail(190, "Invalid OAuth access token - Cannot parse access token", subcode=467)
        if t.expires_at and t.expires_at <= self.now():
            raise Fail(190, "Error validating access token: Session has expired", subcode=463)
        if self.require_proof:
            want = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(call.params.get("appsecret_proof", ""), want):
                raise Fail(100, "Invalid appsecret_proof provided in the API argument")

    # ---- handlers -----------------------------------------------------------
    def _debug_token(self, call: Call) -> tuple[int, Any]:
        t = self.tokens.get(call.params.get("input_token", ""))
        if t is None:
            data: dict[str, Any] = {
                "is_valid": False,
                "error": {"code": 190, "message": "Invalid OAuth access token."},
                "scopes": [],
            }
            return 200, {"data": data}
        expired = bool(t.expires_at) and t.expires_at <= self.now()
        return 200, {
            "data": {
                "app_id": self.app_id,
                "type": t.type,
                "application": "fake",
                "expires_at": t.expires_at,
                "data_access_expires_at": t.data_access_expires_at,
                "is_valid": t.is_valid and not expired,
                "issued_at": t.issued_at,
                "scopes": list(t.scopes),
                "user_id": t.user_id,
            }
        }

    def _exchange(self, call: Call) -> tuple[int, Any]:
        p = call.params
        if p.get("grant_type") != "fb_exchange_token":
            raise Fail(100, "Unsupported grant_type")
        if p.get("client_id") != self.app_id or p.get("client_secret") != self.app_secret:
            raise Fail(101, "Error validating client secret.")
        old = self.tokens.get(p.get("fb_exchange_token", ""))
        if old is None or not old.is_valid or (old.expires_at and old.expires_at <= self.now()):
            raise Fail(190, "Error validating access token: Session has expired", subcode=463)
        new = f"LL{len(self.tokens)}{old.token}"
        self.add_token(
            new,
            expires_at=self.now() + self.exchange_expires_in,
            scopes=old.scopes,
            user_id=old.user_id,
        )
        return 200, {
            "access_token": new,
            "token_type": "bearer",
            "expires_in": self.exchange_expires_in,
        }

    def _me(self, call: Call) -> tuple[int, Any]:
        return 200, {"id": self.tokens[call.params["access_token"]].user_id}

    def add_collection(self, path: str, items: list[dict[str, Any]]) -> None:
        """A GET edge answering ``items`` in pages of ``limit`` (default 25) with cursors."""
        self.collections[path] = items
        self.route("GET", re.escape(path), self._page)

    def _page(self, call: Call) -> tuple[int, Any]:
        return paged(call, self.collections[call.path], self.version)


def paged(
    call: Call, items: list[Any], version: str, shape: Callable[[Any], Any] = lambda v: v
) -> tuple[int, Any]:
    """One page of ``items`` (``limit``, default 25, from the ``after`` cursor), each
    answered as ``shape`` makes it, with the cursors and the next page's URL."""
    limit = int(call.params.get("limit", 25))
    start = int(call.params["after"][1:]) if "after" in call.params else 0
    chunk = [shape(v) for v in items[start : start + limit]]
    body: dict[str, Any] = {"data": chunk}
    if chunk:
        end = start + len(chunk)
        body["paging"] = {"cursors": {"before": f"c{start}", "after": f"c{end}"}}
        if end < len(items):
            body["paging"]["next"] = f"/{version}/{call.path}?after=c{end}"
    return 200, body


def _handler_class(fake: FakeGraph) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet tests
            pass

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            ctype = self.headers.get("Content-Type", "")
            if raw and "json" in ctype:
                params.update(
                    {
                        k: v if isinstance(v, str) else json.dumps(v)
                        for k, v in json.loads(raw).items()
                    }
                )
            elif raw:
                params.update(parse_qsl(raw.decode(), keep_blank_values=True))
            prefix = f"/{fake.version}/"
            headers: dict[str, str]
            if not parts.path.startswith(prefix):
                status, body, headers = (
                    400,
                    {
                        "error": {
                            "message": "Unknown version",
                            "code": 2635,
                            "type": "OAuthException",
                        }
                    },
                    {},
                )
            else:
                path = parts.path[len(prefix) :].strip("/")
                call = Call(self.command, path, params, raw, dict(self.headers))
                with fake.lock:
                    fault = fake._take_fault(path, network=True)
                    if fault is not None:
                        fake.calls.append(call)
                if fault == "hang":
                    fake.release.wait(30)
                    self.close_connection = True
                    return
                if fault == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, body, headers = fake.handle(call)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

    return H


@contextmanager
def running(fake: FakeGraph) -> Iterator[str]:
    """Serve ``fake`` on 127.0.0.1 (a free port); yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join()
