"""Plans and deliveries over HTTP (``/v1/plans``, ``/v1/messages``) on the real
server: the same rules as the CLI, JSON errors with the service's codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from audience.runtime.node import Node
from tests.helpers.server_api import Live, start
from tests.plans_support import ONCE_DUE, RULES, build, milan_buyers_at_once, runs

N = 30


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    st = build(tmp_path / "shop", N)
    assert st.path is not None
    Node.init(st.path, st.path / "nodes" / "main" / "schema.toml", node="other")
    srv = start(st.path)
    yield srv
    srv.server.stop()


def test_plans_lifecycle(live: Live) -> None:
    c = live.client("write")
    r = c.post("/v1/plans", {"text": RULES})
    assert r.status == 200, r.body
    body = r.json()
    assert [d["name"] for d in body["deliveries"]] == ["Spring event reminder"]
    assert [(p["name"], p["state"]) for p in body["plans"]] == [
        ("Spring reminder", "draft"),
        ("Daily picks", "draft"),
    ]
    r = c.post("/v1/plans/Spring reminder/ready")
    assert r.status == 200, r.body
    assert r.json()["state"] == "ready"
    assert r.json()["next_occurrence"] == "2027-03-11T09:00:00Z"
    got = c.get("/v1/plans/Spring reminder").json()
    assert got["state"] == "ready" and got["version"] == 1
    assert c.get("/v1/plans/Spring reminder/runs").json() == {"runs": []}
    preview = c.get(f"/v1/plans/Spring reminder/preview?at={ONCE_DUE}").json()
    assert preview["to_send"] == len(milan_buyers_at_once(N))
    assert runs(live.path) == []
    r = c.request("DELETE", "/v1/messages/Spring event reminder")
    assert r.status == 409 and r.json()["error"]["code"] == "delivery_in_use"
    r = c.post("/v1/plans/Spring reminder/draft")
    assert r.status == 200 and r.json()["state"] == "draft"
    assert c.request("DELETE", "/v1/plans/Spring reminder").json() == {"deleted": "Spring reminder"}
    listed = c.get("/v1/plans").json()["plans"]
    assert [p["name"] for p in listed] == ["Daily picks"]


def test_refusals_are_json_with_codes(live: Live) -> None:
    c = live.client("write")
    r = c.get("/v1/plans/Nope")
    assert r.status == 404 and r.json()["error"]["code"] == "not_found"
    r = c.post("/v1/plans", {"text": RULES.replace('who "Milan buyers"', 'who "Nobody"')})
    assert r.status == 400 and r.json()["error"]["code"] == "unknown_segment"
    assert c.get("/v1/plans").json() == {"plans": []}
    r = c.post("/v1/plans", {"text": 'segment "x" { city = "Milan" }'})
    assert r.status == 400 and r.json()["error"]["code"] == "no_definition"
    c.post("/v1/plans", {"text": RULES})
    Node.open(live.path).delete_segment("Milan buyers")
    r = c.post("/v1/plans/Spring reminder/ready")
    assert r.status == 400
    err = r.json()["error"]
    assert err["code"] == "not_ready" and any("Milan buyers" in p for p in err["problems"])


def test_scopes_and_nodes(live: Live) -> None:
    r = live.client("read").post("/v1/plans", {"text": RULES})
    assert r.status == 403
    assert live.client("write").post("/v1/plans", {"text": RULES}).status == 200
    assert len(live.client("read").get("/v1/plans").json()["plans"]) == 2
    # plans belong to a node: the other node's token sees none
    assert live.client("other").get("/v1/plans").json() == {"plans": []}
    assert live.client("other").get("/v1/messages").json() == {"deliveries": []}


def test_messages_and_test_sends(live: Live) -> None:
    c = live.client("write")
    r = c.post("/v1/messages", {"text": RULES})
    assert r.status == 200
    assert [d["name"] for d in r.json()["deliveries"]] == ["Spring event reminder"]
    assert c.get("/v1/plans").json() == {"plans": []}  # only the deliveries were saved
    assert c.get("/v1/messages/Spring event reminder").json()["version"] == 1
    r = c.post("/v1/messages/Spring event reminder/test", {"contact": "c00002"})
    assert r.status == 200, r.body
    sent = r.json()["sent"]
    assert [(s["to"], s["test"]) for s in sent] == [
        ("qa@maison.example", True),
        ("marketing@maison.example", True),
    ]
    r = c.post("/v1/messages/Spring event reminder/test", {"contact": "nobody"})
    assert r.status == 400 and r.json()["error"]["code"] == "unknown_contact"
    assert c.request("DELETE", "/v1/messages/Spring event reminder").status == 200
    assert c.get("/v1/messages").json() == {"deliveries": []}
