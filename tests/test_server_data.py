"""Writing and reading a node over HTTP: events and profiles in every body
kind, profiles by id, saved segments and their audiences."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pytest

from audience.runtime.node import Node
from audience.server.auth import Sources
from tests.helpers.server_api import NOW_ISO, RED_SHOES, Live, build_store, event, start


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path = build_store(tmp_path_factory.mktemp("data") / "shop", n_events=3000, n_contacts=200)
    srv = start(path)
    yield srv
    srv.server.stop()


def arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def test_events_as_json_array_with_rejects_and_duplicates(live: Live) -> None:
    c = live.client()
    body = [
        event("j1", eid="j-1"),
        {"contact_id": "j2", "type": "purchased"},  # no ts
        "not an object",
        event("j3", "purchased", eid="j-1"),  # the same id again
        event("j4", "viewed_product", price="cheap"),
    ]
    r = c.post("/v1/events", body).json()
    assert (r["accepted"], r["rejected"], r["duplicates"]) == (1, 3, 1)
    assert [(x["index"], x["field"]) for x in r["rejects"]] == [
        (1, "ts"),
        (2, None),
        (4, "price"),
    ]
    assert "price" in r["rejects"][2]["reason"]
    # one object on its own is a batch of one
    r = c.post("/v1/events", event("j5")).json()
    assert r["accepted"] == 1 and r["rejects"] == []
    rejected = Node.open(live.path).rejected()
    assert any("price" in (x.field or "") for x in rejected)  # kept, SPEC section 1


def test_events_as_ndjson(live: Live) -> None:
    lines = [
        json.dumps(event("n1", eid="n-1")),
        "",
        "{not json",
        json.dumps(event("n2", eid="n-2")),
        "[1]",
    ]
    raw = "\n".join(lines).encode()
    r = live.client().post("/v1/events", raw=raw, content_type="application/x-ndjson").json()
    assert (r["accepted"], r["rejected"]) == (2, 2)
    assert [x["index"] for x in r["rejects"]] == [2, 4]
    assert "not valid JSON" in r["rejects"][0]["reason"]


def test_events_as_arrow_ipc(live: Live) -> None:
    table = pa.table(
        {
            "id": ["a-1", "a-2", "a-3"],
            "contact_id": ["a1", "a2", None],
            "type": ["purchased", "purchased", "purchased"],
            "ts": pa.array([1793534400000] * 3, pa.timestamp("ms", tz="UTC")),
            "amount": [10.0, 20.0, 30.0],
        }
    )
    c = live.client()
    raw = arrow_stream(table)
    r = c.post("/v1/events", raw=raw, content_type="application/vnd.apache.arrow.stream")
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["rejects"][0]["index"] == 2 and body["rejects"][0]["field"] == "contact_id"
    r = c.post("/v1/events", raw=b"junk", content_type="application/vnd.apache.arrow.stream")
    assert r.status == 400 and r.json()["error"]["code"] == "bad_arrow"
    seg = c.post("/v1/evaluate", {"segment": "sum(amount) of purchased > 15", "limit": 5000})
    assert "a2" in seg.json()["ids"] and "a1" not in seg.json()["ids"]


def test_profiles_post_get_patch(live: Live) -> None:
    c = live.client()
    r = c.post(
        "/v1/profiles",
        [
            {
                "contact_id": "p1",
                "email": "p1@example.com",
                "tags": ["vip"],
                "birth_date": "1990-02-03",
            },
            {"contact_id": "p2", "loyalty_points": "many"},
        ],
    ).json()
    assert (r["accepted"], r["rejected"]) == (1, 1) and r["rejects"][0]["field"] == "loyalty_points"
    assert "triggers" not in r
    p = c.get("/v1/profiles/p1").json()
    assert p["has_profile"] and p["first_event"] is None
    assert p["profile"]["email"] == "p1@example.com" and p["profile"]["tags"] == ["vip"]
    assert p["profile"]["birth_date"] == "1990-02-03" and p["profile"]["city"] is None
    before = live.version()
    r = c.request("PATCH", "/v1/profiles/p1", {"city": "Milan", "loyalty_points": 7})
    assert r.status == 200
    p = r.json()["profile"]
    assert (p["city"], p["loyalty_points"], p["email"]) == ("Milan", 7, "p1@example.com")
    assert live.version() == before + 1
    for bad in ({"loyalty_points": "x"}, {"no_such_field": 1}, {"contact_id": "other"}):
        r = c.request("PATCH", "/v1/profiles/p1", bad)
        assert r.status == 400, bad
    assert live.version() == before + 1  # a refused PATCH changes nothing
    angela = c.get("/v1/profiles/angela").json()
    assert angela["profile"]["first_name"] == "Angela" and angela["first_event"] is not None
    assert c.get("/v1/profiles/nobody-at-all").status == 404


def test_profiles_as_ndjson_and_who_wrote_them(live: Live) -> None:
    raw = b'{"contact_id": "nd1", "city": "Rome"}\n{"contact_id": "nd2", "city": "Turin"}\n'
    r = live.client().post("/v1/profiles", raw=raw, content_type="application/x-ndjson")
    assert r.json()["accepted"] == 2
    assert live.client("read").get("/v1/profiles/nd2").json()["profile"]["city"] == "Turin"
    sources = Sources(live.path)
    writer = next(s for s in sources.list_sources("main") if s.name == "test write")
    assert sources.writes(writer.id, limit=1)[0].kind == "profiles"


def test_saved_segments_crud_and_audience(live: Live) -> None:
    c = live.client()
    r = c.post("/v1/segments", {"text": RED_SHOES})
    assert r.status == 201
    name = "Red Shoes viewed without purchase"
    assert r.json()["name"] == name and unquote(r.headers["location"]) == f"/v1/segments/{name}"
    assert c.post("/v1/segments", {"text": RED_SHOES}).status == 409
    assert c.post("/v1/segments", {"text": "did purchased"}).status == 400  # no name
    bad = c.post("/v1/segments", {"name": "Bad", "text": "did purchasd"})
    assert bad.status == 400 and bad.json()["error"]["line"] == 1
    assert c.get("/v1/segments/Bad").status == 404  # nothing saved
    want = Node.open(live.path).compile(RED_SHOES).evaluate(as_of=NOW_ISO).ids()
    r = c.get(f"/v1/segments/{name}/audience?as_of={NOW_ISO}&limit=1000&explain=true")
    body = r.json()
    assert body["ids"] == want and body["explain"]["rules"]
    # a saved segment can use another one
    r = c.request("PUT", "/v1/segments/Red and Milan", {"text": f'in segment "{name}"'})
    assert r.status == 201
    r = c.get(f"/v1/segments/Red and Milan/audience?as_of={NOW_ISO}&limit=1000")
    assert r.json()["ids"] == want
    # paging a saved segment; replacing it ends its cursors
    page = c.get(f"/v1/segments/{name}/audience?as_of={NOW_ISO}&limit=1").json()
    assert page["next"] and len(page["ids"]) == 1
    r = c.request("PUT", f"/v1/segments/{name}", {"text": RED_SHOES.replace("15 days", "16 days")})
    assert r.status == 200 and r.json()["version"] == 2
    r = c.get(f"/v1/segments/{name}/audience?cursor={page['next']}")
    assert r.status == 410 and r.json()["error"]["code"] == "cursor_expired"
    names = [s["name"] for s in c.get("/v1/segments").json()["segments"]]
    assert name in names and "Red and Milan" in names
    for query in ("limit=-1", "limit=x", "explain=maybe", "bogus=1", "as_of=soon"):
        r = c.get(f"/v1/segments/{name}/audience?{query}")
        assert r.status == 400, query
    r = c.request("DELETE", f"/v1/segments/{name}")  # "Red and Milan" uses it
    assert r.status == 409 and r.json()["error"]["code"] == "segment_in_use"
    assert r.json()["error"]["used_by"] == ['segment "Red and Milan"']
    assert c.request("DELETE", "/v1/segments/Red and Milan").json() == {"deleted": "Red and Milan"}
    assert c.request("DELETE", "/v1/segments/Red and Milan").status == 404


def test_a_new_node_is_served_without_a_restart(live: Live, tmp_path: Path) -> None:
    Node.init(live.path, Path(live.path / "nodes/main/schema.toml"), node="late")
    _, token = Sources(live.path).create("late", "late", "write")
    c = live.client(token)
    assert c.post("/v1/events", [event("late-1")]).json()["accepted"] == 1
    assert c.post("/v1/evaluate", {"segment": "did purchased"}).json()["ids"] == ["late-1"]
