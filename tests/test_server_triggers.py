"""Triggers, DND policies, templates and deliveries over HTTP: the seed's
welcome email, from definitions sent as DSL text to the delivery it records."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from audience.demo.run import EXAMPLES
from tests.helpers.server_api import NOW_ISO, Live, build_store, event, start

RULES = (EXAMPLES / "maison.rules").read_text(encoding="utf-8")
TRIGGER = RULES[RULES.index('\ntrigger "') : RULES.index('\ndnd "')].strip() + "\n"
POLICY = RULES[RULES.index('\ndnd "') :].strip() + "\n"
NAME = "Thank newsletter subscribers"
POLICY_NAME = "Maison shoes, clothes and accessories"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path = build_store(tmp_path_factory.mktemp("trig") / "shop", n_events=3000, n_contacts=200)
    srv = start(path)
    yield srv
    srv.server.stop()


def form(eid: str, contact: str = "angela", ts: str = NOW_ISO) -> dict[str, object]:
    return event(contact, "form_compiled", eid=eid, form_name="addUser", context="WEB") | {"ts": ts}


def test_the_welcome_email_flow(live: Live) -> None:
    c = live.client("write")
    # without the campaign's template the trigger fires but its send fails
    r = c.post("/v1/dnd-policies", {"text": POLICY.replace(POLICY_NAME, "Loose")})
    assert r.status == 201
    r = c.post("/v1/events", [form("before-1")])
    assert r.json()["triggers"]["fired"] == 0  # no trigger yet
    template = {
        "name": "C-1234",
        "subject": "Welcome {{ first_name }}",
        "html": "<p>Thanks for the {{ form }} form, {{ first_name }}</p>",
        "text": "Thanks, {{ first_name }}",
    }
    assert c.post("/v1/templates", template).status == 201
    r = c.post("/v1/dnd-policies", {"text": POLICY})
    assert r.status == 201, r
    assert r.json()["name"] == POLICY_NAME and r.headers["location"].startswith("/v1/dnd-")
    r = c.post("/v1/triggers", {"text": TRIGGER})
    assert r.status == 201, r
    body = r.json()
    assert (body["name"], body["enabled"], body["version"]) == (NAME, True, 1)
    assert c.get("/v1/triggers").json()["triggers"][0]["name"] == NAME

    r = c.post("/v1/events", [form("welcome-1")])
    assert r.status == 200
    fired = r.json()["triggers"]
    assert (fired["matched"], fired["fired"]) == (1, 1)
    firing = fired["firings"][0]
    assert (firing["trigger"], firing["contact_id"], firing["event"], firing["ts"]) == (
        NAME,
        "angela",
        "welcome-1",
        "2026-11-01T12:00:00.000Z",
    )
    assert [o["action"] for o in firing["outcome"]] == ["send_email"]
    delivery = fired["deliveries"][0]
    assert (delivery["contact_id"], delivery["email"]) == ("angela", "angela@example.com")
    assert delivery["status"] in ("reserved", "deferred")
    assert delivery["payload"]["subject"] == "Welcome Angela"

    listed = c.get("/v1/deliveries?contact=angela").json()["deliveries"]
    assert [d["id"] for d in listed] == [delivery["id"]]
    assert listed[0]["source"].endswith(NAME) and listed[0]["policy"] == POLICY_NAME

    # the same event again: a duplicate, nothing fires
    r = c.post("/v1/events", [form("welcome-1")]).json()
    assert r["duplicates"] == 1 and r["triggers"]["fired"] == 0

    # a second form the same day: the policy's "max 1 per day" suppresses it
    r = c.post("/v1/events", [form("welcome-2", ts="2026-11-01T13:00:00Z")]).json()
    assert r["triggers"]["fired"] == 1
    assert r["triggers"]["deliveries"][0]["status"] == "suppressed"
    suppressed = c.get("/v1/deliveries?status=suppressed&contact=angela").json()["deliveries"]
    assert len(suppressed) == 1 and suppressed[0]["cap"] == "max 1 per day"

    # no email, no send: the trigger's `if profile.email is set` is false
    r = c.post("/v1/events", [form("welcome-3", contact="nobody-new")]).json()
    assert (r["triggers"]["matched"], r["triggers"]["fired"]) == (1, 0)

    # node other sees none of node main's deliveries
    assert live.client("other").get("/v1/deliveries").json()["deliveries"] == []
    everything = c.get("/v1/deliveries?since=2026-01-01").json()["deliveries"]
    assert [d["status"] for d in everything] == ["reserved", "suppressed"]
    assert c.get("/v1/deliveries?since=9999-01-01").json()["deliveries"] == []
    assert len(c.get("/v1/deliveries?limit=1").json()["deliveries"]) == 1


def test_trigger_errors(live: Live) -> None:
    c = live.client("write")
    bad = TRIGGER.replace("form_compiled", "form_compiledd")
    r = c.post("/v1/triggers", {"text": bad})
    assert r.status == 400
    err = r.json()["error"]
    assert err["line"] == 2 and "form_compiled" in (err["help"] or "")
    r = c.post("/v1/triggers", {"text": TRIGGER.replace(POLICY_NAME, "No such policy")})
    assert r.status == 400 and "No such policy" in r.json()["error"]["message"]
    two = TRIGGER + TRIGGER.replace(NAME, "Another")
    r = c.post("/v1/triggers", {"text": two})
    assert r.status == 400 and r.json()["error"]["code"] == "not_one_trigger"
    r = c.post("/v1/triggers", {"text": 'segment "s" { did purchased }'})
    assert r.status == 400 and r.json()["error"]["code"] == "not_one_trigger"
    r = c.request("PUT", "/v1/triggers/Other name", {"text": TRIGGER})
    assert r.status == 400 and r.json()["error"]["code"] == "name_mismatch"
    later = {"text": TRIGGER, "valid_from": "2027-01-01", "valid_until": 0}
    r = c.request("PUT", f"/v1/triggers/{NAME}", later)
    assert r.status == 400 and "validity" in r.json()["error"]["message"]
    # refused: still valid from the moment it was saved (the tests' clock)
    assert c.get(f"/v1/triggers/{NAME}").json()["valid_from"] == "2026-01-01T00:00:00.000Z"
    assert c.get("/v1/triggers/nope").status == 404
    assert c.request("DELETE", "/v1/triggers/nope").status == 404


def test_trigger_replace_disable_delete(live: Live) -> None:
    c = live.client("write")
    text = TRIGGER.replace(NAME, "Short-lived")
    assert c.post("/v1/triggers", {"text": text}).status == 201
    assert c.post("/v1/triggers", {"text": text}).status == 409
    r = c.request("PUT", "/v1/triggers/Short-lived", {"text": text, "enabled": False})
    assert r.status == 200 and r.json()["enabled"] is False and r.json()["version"] == 2
    r = c.request(
        "PUT", "/v1/triggers/Short-lived", {"text": text, "valid_from": "2026-01-01T00:00:00Z"}
    )
    assert r.json()["valid_from"] == "2026-01-01T00:00:00.000Z" and r.json()["enabled"]
    assert c.request("DELETE", "/v1/triggers/Short-lived").json() == {"deleted": "Short-lived"}
    assert c.get("/v1/triggers/Short-lived").status == 404


def test_dnd_policies_crud(live: Live) -> None:
    c = live.client("write")
    text = 'dnd "Quiet" {\n  max 2 per week\n  quiet hours 22:00 to 08:00\n}\n'
    r = c.post("/v1/dnd-policies", {"text": text})
    assert r.status == 201 and r.json()["version"] == 1
    r = c.request("PUT", "/v1/dnd-policies/Quiet", {"text": text.replace("max 2", "max 3")})
    assert r.status == 200 and r.json()["version"] == 2
    assert c.get("/v1/dnd-policies/Quiet").json()["text"].count("max 3 per week") == 1
    names = [p["name"] for p in c.get("/v1/dnd-policies").json()["policies"]]
    assert "Quiet" in names
    r = c.post("/v1/dnd-policies", {"text": 'dnd "X" { max 0 per eon }'})
    assert r.status == 400 and "line" in r.json()["error"]
    assert c.request("DELETE", "/v1/dnd-policies/Quiet").status == 200
    assert c.get("/v1/dnd-policies/Quiet").status == 404


def test_templates_crud(live: Live) -> None:
    c = live.client("write")
    tpl = {
        "name": "C-9",
        "subject": "Hi {{ first_name }}",
        "html": "<p>{{ first_name }}</p>",
        "text": "{{ first_name }}",
    }
    r = c.post("/v1/templates", tpl)
    assert r.status == 201 and r.json()["subject"] == tpl["subject"]
    assert c.post("/v1/templates", tpl).status == 409
    r = c.request("PUT", "/v1/templates/C-9", {**tpl, "subject": "Hello"} | {"name": None})
    assert r.status == 400  # PUT takes the parts only
    parts = {k: v for k, v in tpl.items() if k != "name"}
    r = c.request("PUT", "/v1/templates/C-9", parts | {"subject": "Hello"})
    assert r.status == 200 and r.json()["version"] == 2
    r = c.post("/v1/templates", tpl | {"name": "Broken", "html": "{{ first_name "})
    assert r.status == 400 and r.json()["error"]["code"] == "template_error"
    assert c.get("/v1/templates/Broken").status == 404
    assert "C-9" in [t["name"] for t in c.get("/v1/templates").json()["templates"]]
    assert c.request("DELETE", "/v1/templates/C-9").status == 200


def test_delivery_filters_are_checked(live: Live) -> None:
    c = live.client("read")
    for query in ("status=lost", "limit=0", "limit=x", "since=tomorrow", "bogus=1"):
        r = c.get(f"/v1/deliveries?{query}")
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_request", query
