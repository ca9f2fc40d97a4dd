"""The leadgen webhook and ``/v1/leadforms`` on the real server (waitress on
127.0.0.1), the fake Graph server on loopback, a real store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from audience.integrations.meta.leads.inbox import Inbox
from audience.integrations.meta.leads.webhook import sign
from audience.runtime.store import Store
from audience.server.app import create_app
from audience.server.auth import Sources
from audience.server.context import ServerConfig
from audience.server.serve import ServerThread
from tests.helpers.server_api import Client
from tests.meta_leads_support import (
    ANGELA,
    EXAMPLES,
    FORM,
    PAGE,
    World,
    lead_events,
    profile,
    world,
)

HOOK = "/hooks/meta"


@dataclass
class Served:
    w: World
    url: str
    write: Client
    read: Client

    @property
    def hook(self) -> str:
        return self.url + HOOK

    def counts(self) -> dict[str, int]:
        return Inbox(self.w.root).counts()


@pytest.fixture
def s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    with world(tmp_path) as w:
        for k, v in w.env().items():
            monkeypatch.setenv(k, v)
        sources = Sources(w.root)
        write = sources.create("main", "ads", "write")[1]
        read = sources.create("main", "viewer", "read")[1]
        app = create_app(ServerConfig(w.root, clock=w.clock))
        with ServerThread(app) as server:
            yield Served(w, server.url, Client(server.url, write), Client(server.url, read))


def wait_done(s: Served, leadgen_id: str, timeout: float = 60.0) -> None:
    """Until the server's worker has stored the lead (a condition, not a race)."""
    inbox = Inbox(s.w.root)
    deadline = time.monotonic() + timeout
    while inbox.get(leadgen_id).state != "done":
        assert time.monotonic() < deadline, inbox.get(leadgen_id)
        time.sleep(0.02)


# ---------------------------------------------------------------- handshake
def test_the_handshake_echoes_the_challenge_for_our_token(s: Served) -> None:
    ok = Client(s.url).get(
        f"{HOOK}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me"
    )
    assert (ok.status, ok.body) == (200, b"1158201444")


@pytest.mark.parametrize(
    "query",
    [
        "hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong",
        "hub.mode=subscribe&hub.challenge=1",
        "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=verify-me",
        "",
    ],
)
def test_a_wrong_handshake_is_403(s: Served, query: str) -> None:
    assert Client(s.url).get(f"{HOOK}?{query}").status == 403


# ---------------------------------------------------------------- notifications
def test_a_signed_notification_is_stored_then_its_lead(s: Served) -> None:
    lead = s.w.lead({"email": "angela@example.com", "first_name": "Angèla ✓", "x": "y"})
    status, body = s.w.leads.deliver_leadgen(s.hook, [lead])
    assert status == 200 and json.loads(body) == {"received": 1, "new": 1}
    wait_done(s, lead["id"])
    st = s.w.store()
    assert profile(st, ANGELA)["first_name"] == "Angèla ✓"  # as fetched from the platform
    (ev,) = lead_events(st)
    assert ev["contact_id"] == ANGELA and ev["leadgen_id"] == lead["id"]
    assert ev["page_id"] == PAGE and ev["form_id"] == FORM


@pytest.mark.parametrize(
    "kw",
    [
        {"secret": "not-the-app-secret"},
        {"signature": ""},  # none at all
        {"signature": "sha256=" + "0" * 64},
        {"signature": "sha1=abc"},
    ],
)
def test_a_bad_signature_is_refused_and_nothing_stored(s: Served, kw: dict) -> None:
    lead = s.w.lead({"email": "nope@example.com"})
    status, body = s.w.leads.deliver_leadgen(s.hook, [lead], **kw)
    assert status == 403 and json.loads(body)["error"]["code"] == "bad_signature"
    assert sum(v for k, v in s.counts().items() if k in ("pending", "done")) == 0


def test_a_reserialized_body_does_not_verify(s: Served) -> None:
    lead = s.w.lead({"email": "x@example.com"})
    raw = s.w.leads.notification([lead])
    signed_for = s.w.leads.deliver_leadgen  # sign the raw body, send another encoding of it
    other = json.dumps(json.loads(raw), separators=(",", ":")).encode()  # same JSON, other bytes
    assert other != raw
    status, _ = signed_for(s.hook, [lead], body=other, signature=sign("fake-app-secret", raw))
    assert status == 403 and s.counts()["pending"] == 0


def test_duplicate_notifications_store_one_lead(s: Served) -> None:
    lead = s.w.lead({"email": "dup@example.com"})
    first = s.w.leads.deliver_leadgen(s.hook, [lead, lead])
    again = s.w.leads.deliver_leadgen(s.hook, [lead])
    assert json.loads(first[1]) == {"received": 2, "new": 1}
    assert json.loads(again[1]) == {"received": 1, "new": 0}
    wait_done(s, lead["id"])
    assert json.loads(s.w.leads.deliver_leadgen(s.hook, [lead])[1])["new"] == 0
    assert len(lead_events(s.w.store())) == 1


def test_a_signed_body_that_is_not_a_notification_is_400(s: Served) -> None:
    raw = b'{"object":"page"}'
    status, body = s.w.leads.deliver_leadgen(
        s.hook, [], body=raw, signature=sign("fake-app-secret", raw)
    )
    assert status == 400 and json.loads(body)["error"]["code"] == "bad_notification"


# ---------------------------------------------------------------- /v1/leadforms
def test_connect_refuses_a_field_the_schema_lacks(s: Served) -> None:
    body: dict[str, Any] = {
        "name": "autumn",
        "integration": "shop-ads",
        "page_id": PAGE,
        "form_id": "4000000002",
        "mapping": [{"field": "email", "to": "email"}, {"field": "job", "to": "job_title"}],
        "source": "fb-autumn",
    }
    r = s.write.post("/v1/leadforms", body)
    assert r.status == 400 and r.json()["error"]["code"] == "unknown_field"
    assert "'job_title'" in r.json()["error"]["message"]
    assert s.read.get("/v1/leadforms/autumn").status == 404
    assert s.read.post("/v1/leadforms", body).status == 403  # a read token cannot connect
    body["mapping"] = {"email": "email", "first_name": "first_name"}
    r = s.write.post("/v1/leadforms", body)  # the platform does not know the form
    assert r.status == 400 and r.json()["error"]["code"] == "no_form"
    s.w.leads.add_form("4000000002", PAGE, questions=("email", "full_name"))
    r = s.write.post("/v1/leadforms", body)
    assert r.status == 400 and r.json()["error"]["code"] == "unknown_form_field"
    assert "'first_name' is not a question" in r.json()["error"]["message"]
    s.w.leads.add_form("4000000002", PAGE, questions=("email", "first_name"))
    r = s.write.post("/v1/leadforms", body)
    assert r.status == 201 and r.json()["mapping"][1] == {
        "field": "first_name",
        "to": "first_name",
        "required": False,
    }
    names = [f["name"] for f in s.read.get("/v1/leadforms").json()["leadforms"]]
    assert names == ["autumn", "spring"]
    assert s.write.post("/v1/leadforms", body).json()["error"]["code"] == "lead_form_exists"


def test_backfill_show_and_leads_over_http(s: Served) -> None:
    for i in range(3):
        s.w.lead({"email": f"h{i}@example.com", "colour": "red"}, i)
    r = s.write.post("/v1/leadforms/spring/backfill")
    assert r.status == 200 and r.json()["fetched"] == 3 and r.json()["stored"] == 3
    shown = s.read.get("/v1/leadforms/spring").json()
    assert shown["leads"]["done"] == 3 and shown["leads"]["with_unmapped"] == 3
    assert shown["leads"]["with_missing"] == 0
    leads = s.read.get("/v1/leadforms/spring/leads?limit=2").json()["leads"]
    assert len(leads) == 2 and leads[0]["unmapped"] == {"colour": ["red"]}
    assert s.read.get("/v1/leadforms/spring/leads?state=bogus").status == 400
    assert s.read.post("/v1/leadforms/spring/backfill").status == 403
    assert s.write.request("DELETE", "/v1/leadforms/spring").json() == {"disconnected": "spring"}
    assert s.read.get("/v1/leadforms/spring").status == 404


# ---------------------------------------------------------------- nodes
# (the scopes of every /v1/leadforms endpoint: the shared matrix, tests/test_server_auth.py)
def test_another_nodes_token_never_sees_this_nodes_forms(s: Served) -> None:
    Store.init(s.w.root, EXAMPLES / "maison.toml", node="other")
    other_token = Sources(s.w.root).create("other", "elsewhere", "write")[1]
    ops: list[tuple[str, str]] = [
        ("GET", "/v1/leadforms/spring"),
        ("GET", "/v1/leadforms/spring/leads"),
        ("POST", "/v1/leadforms/spring/backfill"),
        ("DELETE", "/v1/leadforms/spring"),
    ]
    before = [f.name for f in s.w.worker().forms.all()]
    elsewhere = Client(s.url, other_token)
    assert elsewhere.get("/v1/leadforms").json() == {"leadforms": []}
    for method, path in ops:
        assert elsewhere.request(method, path, None).status == 404, (method, path)
    assert [f.name for f in s.w.worker().forms.all()] == before == ["spring"]


def test_without_an_app_secret_every_notification_is_refused(
    s: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUDIENCE_META_APP_SECRET")
    lead = s.w.leads.add_lead(FORM, {"email": "u@example.com"}, 0)
    status, body = s.w.leads.deliver_leadgen(s.hook, [lead])
    assert status == 403 and json.loads(body)["error"]["code"] == "webhook_not_configured"
    assert s.counts()["pending"] == 0


def test_the_servers_own_configuration_serves_the_webhook_without_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with world(tmp_path) as w:
        for k in w.env():
            monkeypatch.delenv(k, raising=False)
        config = ServerConfig(
            w.root, clock=w.clock, graph=w.config(), meta_verify_token="from-config"
        )
        with ServerThread(create_app(config)) as server:
            s = Served(w, server.url, Client(server.url), Client(server.url))
            shake = Client(s.url).get(
                f"{HOOK}?hub.mode=subscribe&hub.challenge=7&hub.verify_token=from-config"
            )
            assert (shake.status, shake.body) == (200, b"7")
            lead = w.lead({"email": "angela@example.com", "first_name": "Angèla"})
            status, body = w.leads.deliver_leadgen(s.hook, [lead])
            assert status == 200 and json.loads(body) == {"received": 1, "new": 1}
            wait_done(s, lead["id"])  # fetched with the configured Graph API too
    assert profile(w.store(), ANGELA)["first_name"] == "Angèla"
