"""What the server tests share: a small Maison store with two nodes, sources
with tokens, the real server (waitress) on a free loopback port, and a plain
HTTP client (http.client).  No tests here."""

from __future__ import annotations

import datetime as dt
import http.client
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from audience.demo import shop
from audience.demo.run import EXAMPLES, seed_segments
from audience.dsl.formatter import format_text
from audience.runtime.store import Store
from audience.server.app import create_app
from audience.server.auth import Sources
from audience.server.context import ServerConfig
from audience.server.serve import ServerThread

NOW = shop.DEFAULT_NOW
NOW_ISO = NOW.isoformat().replace("+00:00", "Z")
RED_SHOES = format_text(seed_segments()[0])
OTHER_CONTACT = "only-in-other"


def build_store(path: Path, n_events: int = 20_000, n_contacts: int = 1_000) -> Path:
    """Node ``main``: the Maison shop and Angela; node ``other``: one contact of its own."""
    store = Store.init(path, EXAMPLES / "maison.toml")
    store.ingest_profiles(shop.profiles(n_contacts, now=NOW))
    for chunk in shop.events(n_events, n_contacts, now=NOW):
        store.ingest_events(chunk)
    events, profile = shop.angela(NOW)
    store.ingest_profiles(profile)
    store.ingest_events(events)
    other = Store.init(path, EXAMPLES / "maison.toml", node="other")
    other.ingest_profiles([{"contact_id": OTHER_CONTACT, "email": "o@example.com"}])
    other.ingest_events(
        [{"contact_id": OTHER_CONTACT, "type": "purchased", "ts": NOW_ISO, "amount": 3.0}]
    )
    return path


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        return json.loads(self.body)


@dataclass
class Client:
    url: str
    token: str | None = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        token: str | None = "default",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        parts = urlsplit(self.url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        hdrs = dict(headers or {})
        tok = self.token if token == "default" else token
        if tok is not None:
            hdrs["Authorization"] = f"Bearer {tok}"
        if data is not None:
            hdrs.setdefault("Content-Type", content_type)
        try:
            conn.request(method, quote(path, safe="/?=&%:"), body=data, headers=hdrs)
            resp = conn.getresponse()
            out = resp.read()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, out)
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)


@dataclass
class Live:
    """A running server over a store, with a token per kind of caller."""

    path: Path
    server: ServerThread
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, who: str | None = "write") -> Client:
        return Client(self.url, None if who is None else self.tokens.get(who, who))

    def version(self, node: str = "main") -> int:
        return Store.open(self.path, node).snapshot().version


def make_tokens(path: Path) -> dict[str, str]:
    sources = Sources(path)
    tokens: dict[str, str] = {}
    for key, node, scope in (
        ("write", "main", "write"),
        ("read", "main", "read"),
        ("other", "other", "write"),
        ("other_read", "other", "read"),
    ):
        tokens[key] = sources.create(node, f"test {key}", scope)[1]
    revoked, tok = sources.create("main", "revoked", "write")
    sources.revoke(revoked.id)
    tokens["revoked"] = tok
    tokens["wrong"] = "aud_" + "x" * 43
    return tokens


def start(path: Path, **config: Any) -> Live:
    app = create_app(ServerConfig(path, **config))
    live = Live(path, ServerThread(app, threads=4).start(), make_tokens(path))
    return live


def event(contact: str, kind: str = "purchased", eid: str | None = None, **props: Any) -> dict:
    out: dict[str, Any] = {"contact_id": contact, "type": kind, "ts": NOW_ISO, **props}
    if eid is not None:
        out["id"] = eid
    return out


def ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)
