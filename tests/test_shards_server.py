"""``audience serve`` over a sharded node, on a real server on loopback:
evaluate (pages, cursors, Arrow), saved segments' audiences, and ingest
routed to the shards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from audience.demo import shop
from audience.demo.run import EXAMPLES
from audience.runtime.node import Node, ShardedNode
from audience.runtime.shards import shard_of
from audience.server.app import create_app
from audience.server.auth import Sources
from audience.server.context import ServerConfig
from audience.server.serve import ServerThread
from tests.helpers.server_api import NOW, NOW_ISO, RED_SHOES, Client, event

N_CONTACTS = 300


def _fill(st: Node | ShardedNode) -> None:
    st.ingest_profiles(shop.profiles(N_CONTACTS, now=NOW))
    for chunk in shop.events(4_000, N_CONTACTS, now=NOW):
        st.ingest_events(chunk)
    events, profile = shop.angela(NOW)
    st.ingest_profiles(profile)
    st.ingest_events(events)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Node, Path]]:
    root = tmp_path_factory.mktemp("shards-server")
    sharded = ShardedNode.init(root / "sharded", EXAMPLES / "maison.toml", shards=3)
    plain = Node.init(root / "plain", EXAMPLES / "maison.toml")
    for st in (sharded, plain):
        _fill(st)
    app = create_app(ServerConfig(root / "sharded", default_limit=50))
    server = ServerThread(app, threads=4).start()
    token = Sources(root / "sharded").create("main", "test", "write")[1]
    yield Client(server.url, token), plain, root / "sharded"
    server.stop()


@pytest.fixture
def writable(tmp_path: Path) -> Iterator[tuple[Client, Path]]:
    """A small sharded node of its own, for the tests that write to it."""
    st = ShardedNode.init(tmp_path / "w", EXAMPLES / "maison.toml", shards=3)
    events, profile = shop.angela(NOW)
    st.ingest_profiles(profile)
    st.ingest_events(events)
    server = ServerThread(create_app(ServerConfig(st.path)), threads=2).start()
    token = Sources(st.path).create("main", "test", "write")[1]
    yield Client(server.url, token), st.path
    server.stop()


def _all_pages(c: Client, body: dict) -> tuple[list[str], set[int]]:
    ids: list[str] = []
    versions: set[int] = set()
    r = c.post("/v1/evaluate", body).json()
    while True:
        ids += r["ids"]
        versions.add(r["version"])
        if r["next"] is None:
            return ids, versions
        r = c.post("/v1/evaluate", {**body, "cursor": r["next"]}).json()


def test_evaluate_over_the_shards(stores: tuple[Client, Node, Path]) -> None:
    c, plain, _ = stores
    for text in [RED_SHOES, 'city = "Milan"', "did purchased in last 30 days"]:
        want = plain.compile(text).evaluate(as_of=NOW_ISO).ids()
        r = c.post("/v1/evaluate", {"segment": text, "as_of": NOW_ISO, "limit": 100_000})
        assert r.status == 200
        body = r.json()
        assert body["count"] == len(want) and sorted(body["ids"]) == sorted(want)
        # pages of 7 through the cursor: every id once
        ids, versions = _all_pages(c, {"segment": text, "as_of": NOW_ISO, "limit": 7})
        assert sorted(ids) == sorted(want) and len(versions) == 1
    r = c.post("/v1/evaluate", {"segment": RED_SHOES, "as_of": NOW_ISO, "explain": True})
    explain = r.json()["explain"]
    assert explain["shards"] == 3
    labels = [rule["label"] for rule in explain["rules"]]
    assert labels == ["Clicked Red shoes", "No purchase in the last 15 days"]


def test_arrow_stream_over_the_shards(stores: tuple[Client, Node, Path]) -> None:
    c, plain, _ = stores
    text = "did purchased in last 60 days"
    r = c.post("/v1/evaluate", {"segment": text, "as_of": NOW_ISO, "format": "arrow"})
    assert r.status == 200
    table = pa.ipc.open_stream(r.body).read_all()
    want = plain.compile(text).evaluate(as_of=NOW_ISO).ids()
    assert sorted(table.column("contact_id").to_pylist()) == sorted(want)
    assert r.headers["x-audience-count"] == str(len(want))


def test_saved_segment_audience_over_the_shards(stores: tuple[Client, Node, Path]) -> None:
    c, plain, _ = stores
    r = c.post("/v1/segments", {"text": 'segment "milan" { city = "Milan" }'})
    assert r.status in (200, 201), r.body
    r = c.get(f"/v1/segments/milan/audience?as_of={NOW_ISO}&limit=100000")
    assert r.status == 200, r.body
    want = plain.compile('city = "Milan"').evaluate(as_of=NOW_ISO).ids()
    assert sorted(r.json()["ids"]) == sorted(want)


def test_ingest_over_http_lands_in_the_contacts_shards(writable: tuple[Client, Path]) -> None:
    c, path = writable
    new = [f"http-{i}" for i in range(12)]
    r = c.post("/v1/events", [event(x, eid=f"h{i}", amount=5.0) for i, x in enumerate(new)])
    assert r.status == 200, r.body
    body = r.json()
    assert (body["accepted"], body["duplicates"]) == (12, 0)
    # the same id with another contact (in another shard, maybe): a duplicate
    r = c.post("/v1/events", [event("http-other", eid="h0", amount=5.0)]).json()
    assert (r["accepted"], r["duplicates"]) == (0, 1)
    node = ShardedNode.open(path)
    homes = shard_of(pa.array(new), 3).tolist()
    for contact, k in zip(new, homes, strict=True):
        held = [contact in set(node.shard(j).snapshot().contact_ids) for j in range(3)]
        assert held == [j == k for j in range(3)]
    r = c.post("/v1/evaluate", {"segment": "did purchased where amount = 5", "limit": 1000})
    assert set(new) <= set(r.json()["ids"])


def test_profiles_over_http_read_the_contacts_shard(writable: tuple[Client, Path]) -> None:
    c, _ = writable
    got = c.get("/v1/profiles/angela").json()
    assert got["contact_id"] == "angela" and got["has_profile"]
    assert got["profile"]["email"] == "angela@example.com"
    assert got["first_event"] is not None
    r = c.request("PATCH", "/v1/profiles/angela", {"city": "Turin"})
    assert r.status == 200, r.body
    assert r.json()["profile"]["city"] == "Turin"
    assert c.get("/v1/profiles/angela").json()["profile"]["city"] == "Turin"
    r = c.post("/v1/evaluate", {"segment": 'city = "Turin"', "limit": 100_000}).json()
    assert "angela" in r["ids"]
    assert c.get("/v1/profiles/nobody-at-all").status == 404


def test_what_needs_the_whole_node_is_a_clear_501(stores: tuple[Client, Node, Path]) -> None:
    c, _, _ = stores
    r = c.get("/v1/reports/domains")
    assert r.status == 501
    err = r.json()["error"]
    assert err["code"] == "not_on_sharded_node"
    assert "does not work on a sharded node yet" in err["message"]
