"""Journeys over HTTP (``/v1/journeys``) on the real server: the same rules as
the CLI, JSON errors with the service's codes, scopes and nodes, paging of a
contact's history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import pytest

from audience.runtime.node import Node
from audience.runtime.store import Store
from audience.server.openapi import document
from tests.helpers.server_api import Live, start
from tests.journeys_api_support import DAY, HOUR, JOURNEY, NAME, T0, build, contact, iso
from tests.journeys_api_support import subscription as form


def conforms(body: Any, schema: str) -> Any:
    """``body``, checked against the OpenAPI document's component ``schema``."""
    doc = document()
    jsonschema_rs.validator_for(
        {"$ref": f"#/components/schemas/{schema}", "components": doc["components"]}
    ).validate(body)
    return body


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    st = build(tmp_path / "shop")
    assert st.path is not None
    Store.init(st.path, st.path / "nodes" / "main" / "schema.toml", node="other")
    srv = start(st.path)
    yield srv
    srv.server.stop()


def test_journey_lifecycle(live: Live) -> None:
    c = live.client("write")
    r = c.post("/v1/journeys", {"text": JOURNEY})
    assert r.status == 200, r.body
    [saved] = conforms(r.json(), "JourneysSaved")["journeys"]
    assert (saved["name"], saved["state"], saved["version"]) == (NAME, "draft", 1)
    assert c.get("/v1/journeys").json()["journeys"][0]["name"] == NAME
    r = c.post(f"/v1/journeys/{NAME}/live")
    assert r.status == 200 and r.json()["state"] == "live"
    steps = c.get(f"/v1/journeys/{NAME}/steps").json()["steps"]
    for step in steps:
        conforms(step, "JourneyStep")
    assert [s["step"] for s in steps] == ["0", "1", "1.yes.0", "1.yes.1", "1.no.0"]
    assert all(s["entered"] == 0 for s in steps)
    # an edit of a live journey is a new version
    r = c.post("/v1/journeys", {"text": JOURNEY.replace("3 days", "4 days")})
    assert r.status == 200 and r.json()["journeys"][0]["version"] == 2
    got = conforms(c.get(f"/v1/journeys/{NAME}").json(), "JourneyInfo")
    assert got["versions"] == [1, 2] and "4 days" in got["text"]
    assert c.post(f"/v1/journeys/{NAME}/pause").json()["state"] == "paused"
    r = c.request("DELETE", f"/v1/journeys/{NAME}")
    assert r.status == 409, r.body
    assert c.post(f"/v1/journeys/{NAME}/end").json()["state"] == "ended"
    r = c.post("/v1/journeys", {"text": JOURNEY})
    assert r.status == 409 and r.json()["error"]["code"] == "ended"
    r = c.post(f"/v1/journeys/{NAME}/live")
    assert r.status == 409 and r.json()["error"]["code"] == "bad_state"
    assert c.request("DELETE", f"/v1/journeys/{NAME}").json() == {"deleted": NAME}
    assert c.get("/v1/journeys").json() == {"journeys": []}


def test_refusals_are_json_with_codes(live: Live) -> None:
    c = live.client("write")
    r = c.get("/v1/journeys/Nope")
    assert r.status == 404 and r.json()["error"]["code"] == "not_found"
    r = c.post("/v1/journeys", {"text": JOURNEY.replace('clicked "Welcome"', 'clicked "Zz"')})
    assert r.status == 400
    err = r.json()["error"]
    assert err["line"] > 1 and "Zz" in err["message"]
    assert c.get("/v1/journeys").json() == {"journeys": []}
    r = c.post("/v1/journeys", {"text": 'segment "x" { city = "Milan" }'})
    assert r.status == 400 and r.json()["error"]["code"] == "no_definition"
    # its second delivery only in the text: saved as a draft, but it cannot go live
    alone = 'delivery "Later" { template "profile" fields { first_name: "you" } }\n'
    r = c.post("/v1/journeys", {"text": alone + JOURNEY.replace("Your promotional code", "Later")})
    assert r.status == 200, r.body
    r = c.post(f"/v1/journeys/{NAME}/live")
    assert r.status == 400
    err = r.json()["error"]
    assert err["code"] == "not_ready"
    assert err["problems"] == ["step 1.yes.0: delivery 'Later' is not saved"]
    assert c.request("DELETE", f"/v1/journeys/{NAME}").status == 200
    r = c.post("/v1/journeys", {"text": JOURNEY, "extra": 1})
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_request"
    c.post("/v1/journeys", {"text": JOURNEY})
    r = c.get(f"/v1/journeys/{NAME}/dry-run?since=yesterday&until=1")
    assert r.status == 400 and r.json()["error"]["code"] == "invalid_request"
    r = c.get(f"/v1/journeys/{NAME}/dry-run?since={T0}")
    assert r.status == 400
    r = c.get(f"/v1/journeys/{NAME}/dry-run?since={T0}&until={T0 - 1}")
    assert r.status == 400 and "before" in r.json()["error"]["message"]
    r = c.get(f"/v1/journeys/{NAME}/dry-run?since=1900-01-01&until=9999-01-01")
    assert r.status == 400 and "at most 366 days" in r.json()["error"]["message"]


def test_position_history_enter_and_paging(live: Live) -> None:
    c = live.client("write")
    c.post("/v1/journeys", {"text": JOURNEY})
    assert c.post(f"/v1/journeys/{NAME}/live").status == 200
    Node.open(live.path).ingest_events([form(0, T0 + HOUR)])
    base = f"/v1/journeys/{NAME}/contacts/{contact(0)}"
    pos = conforms(c.get(base).json(), "JourneyPosition")
    assert pos["contact_id"] == contact(0)
    assert [(r["version"], r["entry"], r["step"]) for r in pos["runs"]] == [(1, 1, "1")]
    full = conforms(c.get(base + "/history").json(), "JourneyHistory")
    assert full["next"] is None and len(full["history"]) >= 2
    first = c.get(base + "/history?limit=1").json()
    assert first["history"] == full["history"][:1] and first["next"] == 1
    rest = c.get(base + "/history?limit=1000&offset=1").json()
    assert rest["history"] == full["history"][1:] and rest["next"] is None
    past = c.get(base + f"/history?offset={len(full['history'])}").json()
    assert past["history"] == [] and past["next"] is None
    assert c.get(base + "/history?limit=0").status == 400
    assert c.get(base + "/history?offset=-1").status == 400
    assert c.get(base + "/history?page=2").status == 400
    r = c.post(f"/v1/journeys/{NAME}/contacts/nobody/enter")
    assert r.status == 404 and "no contact 'nobody'" in r.json()["error"]["message"]
    assert c.get(f"/v1/journeys/{NAME}/contacts/nobody").json()["runs"] == []
    r = c.post(f"/v1/journeys/{NAME}/contacts/{contact(1)}/enter")
    assert r.status == 200, r.body
    assert conforms(r.json(), "JourneyEntered")["entered"] is True
    assert c.get(f"/v1/journeys/{NAME}/contacts/{contact(1)}").json()["runs"][0]["step"] == "1"
    dry = c.get(
        f"/v1/journeys/{NAME}/dry-run?since={quote(iso(T0))}&until={quote(iso(T0 + 5 * DAY))}"
    )
    assert dry.status == 200, dry.body
    conforms(dry.json(), "JourneyDryRun")


def test_scopes_and_nodes(live: Live) -> None:
    r = live.client("read").post("/v1/journeys", {"text": JOURNEY})
    assert r.status == 403
    assert live.client("write").post("/v1/journeys", {"text": JOURNEY}).status == 200
    assert len(live.client("read").get("/v1/journeys").json()["journeys"]) == 1
    assert live.client("read").post(f"/v1/journeys/{NAME}/live").status == 403
    # journeys belong to a node: the other node's token sees none
    assert live.client("other").get("/v1/journeys").json() == {"journeys": []}
    assert live.client("other").get(f"/v1/journeys/{NAME}").status == 404
