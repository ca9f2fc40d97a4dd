"""Tokens and scopes: every endpoint x (no token, wrong token, revoked token,
other node's token, read token, write token), and the sources themselves."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from audience.integrations.meta.fake import VERSION, FakeGraph, running
from audience.integrations.meta.graph import GraphConfig
from audience.integrations.meta.tokens import Integrations
from audience.runtime.journeys.service import JourneyService
from audience.runtime.node import Node
from audience.runtime.plans.clock import wall_clock
from audience.runtime.plans.service import PlanService
from audience.server.auth import Sources, hash_token
from audience.server.openapi import document
from tests.helpers.server_api import (
    OTHER_CONTACT,
    Live,
    build_store,
    event,
    start,
)
from tests.meta_leads_support import add_leadforms, leadform_endpoints
from tests.meta_sync_support import add_syncs, sync_endpoints

SEGMENT = 'segment "Buyers" { did purchased }'
POLICY = 'dnd "Calm" {\n  max 5 per day\n}\n'
TRIGGER = 'trigger "Tag buyers" {\n  on purchased\n  do add_tag("buyer")\n}\n'
TEMPLATE = {"subject": "Hi", "html": "<p>Hi</p>", "text": "Hi"}
NOTE = 'delivery "Note" {\n  template "Hello"\n  test list ("qa@example.com")\n}\n'
PLAN = 'plan "Weekly" {\n  who "Buyers"\n  when every week on monday at 09:00\n  send "Note"\n}\n'
JOURNEY = 'journey "Welcome" {\n  start now\n  action "Hi" send "Note"\n}\n'
META_TOKEN = "EAAB-auth-matrix-token"


def named(text: str, old: str, new: str) -> dict[str, str]:
    return {"text": text.replace(old, new)}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path = build_store(tmp_path_factory.mktemp("auth") / "shop", n_events=3000, n_contacts=200)
    store = Node.open(path)
    store.save_segment("Buyers", SEGMENT)
    engine = store.triggers
    engine.add_policies(POLICY)
    engine.add(TRIGGER)
    engine.add_template("Hello", **TEMPLATE)
    for who in ("write", "other"):
        store.save_segment(f"Doomed {who}", "did purchased")
        engine.add_policies(POLICY.replace("Calm", f"Doomed {who}"))
        engine.add(TRIGGER.replace("Tag buyers", f"Doomed {who}"))
        engine.add_template(f"Doomed {who}", **TEMPLATE)
    for node in ("main", "other"):  # plans and their deliveries belong to a node
        plans = PlanService(Node.open(path, node))
        plans.add(NOTE + PLAN)
        for who in ("write", "other"):
            plans.add(
                NOTE.replace("Note", f"Doomed {who}") + PLAN.replace("Weekly", f"Doomed {who}")
            )
    for node in ("main", "other"):  # and their journeys: two live, one to pause, some to go
        journeys = JourneyService(Node.open(path, node))
        names = ["Welcome", "Pausable"] + [f"{w} {who}" for w in ("Doomed", "Ending")
                                           for who in ("write", "other")]  # fmt: skip
        journeys.add("".join(JOURNEY.replace("Welcome", n) for n in names))
        for name in ("Welcome", "Pausable"):
            journeys.go_live(name)
    add_syncs(path)
    # the store's Meta integrations, over a fake Graph API on loopback
    fake = FakeGraph(now=lambda: int(time.time()))
    fake.add_token(META_TOKEN)
    with running(fake) as url:
        graph = GraphConfig(base_url=url, version=VERSION, max_retries=0)
        ints = Integrations(path, graph, wall_clock)
        for name in ("Ads", "Doomed write", "Doomed other"):
            ints.connect(name, "act_1", META_TOKEN)
        add_leadforms(path, fake, "Ads")
        srv = start(path, graph=graph)
        yield srv
        srv.server.stop()


# the endpoints served without a token: a load balancer's probe, the API's own
# description (a client discovers the API, and how to authenticate, before it has a
# token), and the tracking links of sent messages (their own signed token:
# tests/test_tracking.py)
OPEN = ("/healthz", "/openapi.json", "/t/c/{token}", "/t/o/{token}", "/t/u/{token}", "/hooks/meta")


# (method, path template, concrete path, body, scope needed)
def endpoints(who: str) -> list[tuple[str, str, str, Any, str]]:
    return [
        ("POST", "/v1/evaluate", "/v1/evaluate", {"segment": "did purchased"}, "read"),
        ("POST", "/v1/events", "/v1/events", [event(f"auth-{who}", eid=f"auth-{who}")], "write"),
        ("POST", "/v1/profiles", "/v1/profiles", [{"contact_id": f"p-{who}"}], "write"),
        ("GET", "/v1/profiles/{contact_id}", "/v1/profiles/angela", None, "read"),
        ("PATCH", "/v1/profiles/{contact_id}", "/v1/profiles/angela", {"city": "Milan"}, "write"),
        ("GET", "/v1/segments", "/v1/segments", None, "read"),
        (
            "POST",
            "/v1/segments",
            "/v1/segments",
            {"name": f"New {who}", "text": "did purchased"},
            "write",
        ),
        ("GET", "/v1/segments/{name}", "/v1/segments/Buyers", None, "read"),
        ("PUT", "/v1/segments/{name}", "/v1/segments/Buyers", {"text": SEGMENT}, "write"),
        ("DELETE", "/v1/segments/{name}", f"/v1/segments/Doomed {who}", None, "write"),
        ("GET", "/v1/segments/{name}/audience", "/v1/segments/Buyers/audience", None, "read"),
        ("GET", "/v1/triggers", "/v1/triggers", None, "read"),
        ("POST", "/v1/triggers", "/v1/triggers", named(TRIGGER, "Tag buyers", who), "write"),
        ("GET", "/v1/triggers/{name}", "/v1/triggers/Tag buyers", None, "read"),
        ("PUT", "/v1/triggers/{name}", "/v1/triggers/Tag buyers", {"text": TRIGGER}, "write"),
        ("DELETE", "/v1/triggers/{name}", f"/v1/triggers/Doomed {who}", None, "write"),
        ("GET", "/v1/dnd-policies", "/v1/dnd-policies", None, "read"),
        ("POST", "/v1/dnd-policies", "/v1/dnd-policies", named(POLICY, "Calm", who), "write"),
        ("GET", "/v1/dnd-policies/{name}", "/v1/dnd-policies/Calm", None, "read"),
        ("PUT", "/v1/dnd-policies/{name}", "/v1/dnd-policies/Calm", {"text": POLICY}, "write"),
        ("DELETE", "/v1/dnd-policies/{name}", f"/v1/dnd-policies/Doomed {who}", None, "write"),
        ("GET", "/v1/templates", "/v1/templates", None, "read"),
        ("POST", "/v1/templates", "/v1/templates", {"name": who, **TEMPLATE}, "write"),
        ("GET", "/v1/templates/{name}", "/v1/templates/Hello", None, "read"),
        ("PUT", "/v1/templates/{name}", "/v1/templates/Hello", TEMPLATE, "write"),
        ("DELETE", "/v1/templates/{name}", f"/v1/templates/Doomed {who}", None, "write"),
        ("GET", "/v1/deliveries", "/v1/deliveries", None, "read"),
        ("GET", "/v1/plans", "/v1/plans", None, "read"),
        ("POST", "/v1/plans", "/v1/plans", named(NOTE + PLAN, "Weekly", who), "write"),
        ("GET", "/v1/plans/{name}", "/v1/plans/Weekly", None, "read"),
        ("DELETE", "/v1/plans/{name}", f"/v1/plans/Doomed {who}", None, "write"),
        ("POST", "/v1/plans/{name}/ready", "/v1/plans/Weekly/ready", None, "write"),
        ("POST", "/v1/plans/{name}/draft", "/v1/plans/Weekly/draft", None, "write"),
        ("GET", "/v1/plans/{name}/runs", "/v1/plans/Weekly/runs", None, "read"),
        ("GET", "/v1/plans/{name}/preview", "/v1/plans/Weekly/preview", None, "read"),
        ("GET", "/v1/messages", "/v1/messages", None, "read"),
        ("POST", "/v1/messages", "/v1/messages", named(NOTE, "Note", who), "write"),
        ("GET", "/v1/messages/{name}", "/v1/messages/Note", None, "read"),
        ("DELETE", "/v1/messages/{name}", f"/v1/messages/Doomed {who}", None, "write"),
        ("POST", "/v1/messages/{name}/test", "/v1/messages/Note/test", {}, "write"),
        *journey_endpoints(who),
        *sync_endpoints(who, "other" if who == "other" else "main"),
        *leadform_endpoints(who, "other" if who == "other" else "main", "Ads"),
        *integration_endpoints(who),
        ("GET", "/v1/reports/domains", "/v1/reports/domains", None, "read"),
        ("GET", "/v1/reports/domains.html", "/v1/reports/domains.html", None, "read"),
    ]


def journey_endpoints(who: str) -> list[tuple[str, str, str, Any, str]]:
    j = "/v1/journeys/{name}"
    contact = f"/v1/journeys/Welcome/contacts/auth-{who}"  # the contact /v1/events made
    return [
        ("GET", "/v1/journeys", "/v1/journeys", None, "read"),
        ("POST", "/v1/journeys", "/v1/journeys", named(JOURNEY, "Welcome", who), "write"),
        ("GET", j, "/v1/journeys/Welcome", None, "read"),
        ("DELETE", j, f"/v1/journeys/Doomed {who}", None, "write"),
        ("POST", j + "/live", "/v1/journeys/Welcome/live", None, "write"),
        ("POST", j + "/pause", "/v1/journeys/Pausable/pause", None, "write"),
        ("POST", j + "/end", f"/v1/journeys/Ending {who}/end", None, "write"),
        ("GET", j + "/steps", "/v1/journeys/Welcome/steps", None, "read"),
        (
            "GET",
            j + "/dry-run",
            "/v1/journeys/Welcome/dry-run?since=2026-10-01&until=2026-10-02",
            None,
            "read",
        ),
        ("GET", j + "/contacts/{contact_id}", contact, None, "read"),
        ("GET", j + "/contacts/{contact_id}/history", contact + "/history", None, "read"),
        ("POST", j + "/contacts/{contact_id}/enter", contact + "/enter", None, "write"),
    ]


def integration_endpoints(who: str) -> list[tuple[str, str, str, Any, str]]:
    i = "/v1/integrations/{name}"
    new = {"name": f"Ads {who}", "account_id": "act_2", "token": META_TOKEN}
    return [
        ("GET", "/v1/integrations", "/v1/integrations", None, "read"),
        ("POST", "/v1/integrations", "/v1/integrations", new, "write"),
        ("GET", i, "/v1/integrations/Ads", None, "read"),
        ("PATCH", i, "/v1/integrations/Ads", {"reminder_url": None}, "write"),
        ("DELETE", i, f"/v1/integrations/Doomed {who}", None, "write"),
        ("POST", i + "/check", "/v1/integrations/Ads/check", None, "write"),
        (
            "POST",
            i + "/reauthorize",
            "/v1/integrations/Ads/reauthorize",
            {"token": META_TOKEN},
            "write",
        ),
        ("GET", "/v1/integration-reminders", "/v1/integration-reminders", None, "read"),
        ("PUT", "/v1/integration-reminders", "/v1/integration-reminders", {"url": None}, "write"),
    ]


def test_the_matrix_covers_every_documented_endpoint() -> None:
    doc = document()
    documented = {
        (m.upper(), p)
        for p, item in doc["paths"].items()
        for m in item
        if m != "parameters" and p not in OPEN
    }
    assert {(m, p) for m, p, *_ in endpoints("x")} == documented


def test_only_the_open_endpoints_are_documented_without_a_token() -> None:
    doc = document()
    assert doc["security"] == [{"bearer": []}]
    open_ops = {
        p
        for p, item in doc["paths"].items()
        for m, op in item.items()
        if m != "parameters" and op.get("security") == []
    }
    assert open_ops == set(OPEN)


@pytest.mark.parametrize("who", [None, "wrong", "revoked"])
def test_openapi_is_served_without_a_token(live: Live, who: str | None) -> None:
    c = live.client("write")
    r = c.request("GET", "/openapi.json", None, token=live.tokens.get(who or ""))
    assert r.status == 200, r
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert "/v1/evaluate" in doc["paths"]


def _state(live: Live) -> tuple[Any, ...]:
    store = Node.open(live.path)
    defs = store.triggers.defs
    return (
        live.version("main"),
        live.version("other"),
        [(s.name, s.version) for s in store.list_segments()],
        [(t.name, t.version) for t in defs.list_triggers()],
        [(p.name, p.version) for p in defs.list_policies()],
        [(t.name, t.version) for t in defs.list_templates()],
    )


@pytest.mark.parametrize("who", [None, "wrong", "revoked", "bearer-less"])
def test_without_a_live_token_everything_is_401_and_nothing_changes(
    live: Live, who: str | None
) -> None:
    before = _state(live)
    for method, _, path, body, _ in endpoints("none"):
        c = live.client("write")
        if who == "bearer-less":
            r = c.request(method, path, body, token=None, headers={"Authorization": "Basic eA=="})
        else:
            r = c.request(method, path, body, token=live.tokens.get(who or ""))
        assert r.status == 401, (method, path, r)
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert _state(live) == before


def test_a_read_token_cannot_write(live: Live) -> None:
    c = live.client("read")
    for method, _, path, body, scope in endpoints("read"):
        before = _state(live)
        r = c.request(method, path, body)
        if scope == "read":
            assert r.status == 200, (method, path, r)
        else:
            assert r.status == 403, (method, path, r)
            assert r.json()["error"]["code"] == "forbidden"
            assert _state(live) == before


def test_a_write_token_can_do_everything(live: Live) -> None:
    c = live.client("write")
    for method, _, path, body, _ in endpoints("write"):
        r = c.request(method, path, body)
        assert r.status in (200, 201, 202), (method, path, r)


def test_another_nodes_token_never_reaches_this_nodes_data(live: Live) -> None:
    c = live.client("other")
    main_before = live.version("main")
    for method, _, path, body, _ in endpoints("other"):
        r = c.request(method, path, body)
        if method == "GET" and path == "/v1/profiles/angela":
            assert r.status == 404  # angela lives in node main
        else:
            assert r.status in (200, 201, 202), (method, path, r)
    # its writes went to node other; main did not move
    assert live.version("main") == main_before
    r = c.post("/v1/evaluate", {"segment": "did purchased", "limit": 10000}).json()
    assert OTHER_CONTACT in r["ids"] and "angela" not in r["ids"]
    assert "auth-other" in r["ids"]
    main = live.client("read").post("/v1/evaluate", {"segment": "did purchased", "limit": 10000})
    assert "auth-other" not in main.json()["ids"]
    r = live.client("read").get(f"/v1/profiles/{OTHER_CONTACT}")
    assert r.status == 404


def test_tokens_are_stored_hashed_and_revocation_is_immediate(live: Live) -> None:
    sources = Sources(live.path)
    source, token = sources.create("main", "short-lived", "read")
    c = live.client(token)
    assert c.get("/v1/segments").status == 200
    with sqlite3.connect(live.path / "definitions.sqlite") as db:
        rows = db.execute("select token_hash from api_sources").fetchall()
    hashes = {r[0] for r in rows}
    assert hash_token(token) in hashes and token not in hashes
    assert all(len(h) == 64 for h in hashes)
    assert sources.revoke(source.id)
    assert not sources.revoke(source.id)
    assert c.get("/v1/segments").status == 401


def test_writes_record_their_source(live: Live) -> None:
    sources = Sources(live.path)
    writer = next(s for s in sources.list_sources("main") if s.name == "test write")
    c = live.client("write")
    r = c.post("/v1/events", [event("rec-1"), {"contact_id": "rec-2"}])
    assert r.json()["accepted"] == 1 and r.json()["rejected"] == 1
    last = sources.writes(writer.id, limit=1)[0]
    assert (last.kind, last.node, last.accepted, last.rejected) == ("events", "main", 1, 1)
    c.post("/v1/profiles", [{"contact_id": "rec-1", "city": "Rome"}])
    last = sources.writes(writer.id, limit=1)[0]
    assert (last.kind, last.accepted) == ("profiles", 1)
