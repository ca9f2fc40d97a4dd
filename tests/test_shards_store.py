"""What lives at the store level keeps working on a sharded node: saved
segments, ``check --store``, triggers on ingest (each shard matches its own
contacts' events; DND and the delivery log are shared), catch-up; and what
does not work yet is refused with an error that says so."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

import audience
from audience.cli import cli
from audience.runtime.node import Node, ShardedNode
from audience.runtime.shards import shard_of
from audience.runtime.store import SegmentInUse, StoreError
from audience.runtime.store.layout import list_nodes
from tests.helpers.store_data import EVENTS, PROFILES, SCHEMA_TOML
from tests.helpers.triggers import EXAMPLES, add, deliveries, form, seed

AS_OF = "2026-11-01T00:00:00Z"
SEED_TRIGGER = "Thank newsletter subscribers"


@pytest.fixture
def sharded(tmp_path: Path) -> ShardedNode:
    st = ShardedNode.init(tmp_path / "s", SCHEMA_TOML, shards=4)
    st.ingest_profiles(PROFILES)
    st.ingest_events(EVENTS)
    return st


def test_saved_segments_on_a_sharded_node(sharded: ShardedNode, tmp_path: Path) -> None:
    plain = Node.init(tmp_path / "p", SCHEMA_TOML)
    plain.ingest_profiles(PROFILES)
    plain.ingest_events(EVENTS)
    for st in (sharded, plain):
        st.save_segment("buyers", 'segment "buyers" { did purchased }')
    text = 'in segment "buyers" or email ends with "@example.com"'
    got = sharded.compile(text).evaluate(as_of=AS_OF).ids()
    assert sorted(got) == sorted(plain.compile(text).evaluate(as_of=AS_OF).ids())
    assert [s.name for s in sharded.list_segments()] == ["buyers"]
    # a changed saved segment is seen by the next compile
    for st in (sharded, plain):
        st.save_segment("buyers", 'segment "buyers" { did viewed_product }')
    got = sharded.compile(text).evaluate(as_of=AS_OF).ids()
    assert sorted(got) == sorted(plain.compile(text).evaluate(as_of=AS_OF).ids())
    sharded.save_segment("big", 'segment "big" { in segment "buyers" }')
    with pytest.raises(SegmentInUse):
        sharded.delete_segment("buyers")
    assert sharded.delete_segment("big") and sharded.get_segment("big") is None


def test_cli_segments_and_check_against_a_sharded_store(
    sharded: ShardedNode, tmp_path: Path
) -> None:
    runner = CliRunner()
    s = str(sharded.path)
    rules = tmp_path / "r.seg"
    rules.write_text('segment "buyers" { did purchased }\n')
    r = runner.invoke(cli, ["check", str(rules), "--store", s])
    assert r.exit_code == 0, r.output
    bad = tmp_path / "bad.seg"
    bad.write_text('segment "x" { did bought }\n')
    r = runner.invoke(cli, ["check", str(bad), "--store", s])
    assert r.exit_code == 1 and "bought" in r.output
    r = runner.invoke(cli, ["segments", "save", s, "buyers", "-e", "did purchased"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["segments", "list", s])
    assert r.exit_code == 0 and "buyers" in r.output
    r = runner.invoke(cli, ["eval", s, "--segment", "buyers", "--as-of", AS_OF, "--format", "ids"])
    assert r.exit_code == 0, r.output
    assert sorted(r.output.split()) == sorted(sharded.compile("did purchased").evaluate().ids())
    sharded.ingest_events([{"id": "bad", "contact_id": "c1", "type": "nope", "ts": 1}])
    r = runner.invoke(cli, ["rejected", s])
    assert r.exit_code == 0 and "unknown event type" in r.output


def test_the_node_list_names_sharded_nodes(sharded: ShardedNode) -> None:
    Node.init(sharded.path, SCHEMA_TOML, node="plain")
    assert list_nodes(sharded.path) == ["main", "plain"]


def _triggers_store(tmp_path: Path, shards: int) -> ShardedNode:
    st = ShardedNode.init(tmp_path / f"shop{shards}", EXAMPLES / "maison.toml", shards=shards)
    st.triggers.add_template(
        "C-1234",
        "Welcome {{ first_name }}",
        "<p>Hi {{ first_name }}, thanks for {{ form }}</p>",
        "Hi {{ first_name }}, thanks for {{ form }}",
    )
    profiles = [
        {"contact_id": f"c{i}", "email": f"p{i}@example.com", "first_name": f"P{i}"}
        for i in range(20)
    ]
    st.ingest_profiles(profiles)
    return st


def test_triggers_fire_in_every_shard_with_a_shared_log(tmp_path: Path) -> None:
    st = _triggers_store(tmp_path, 4)
    seed(st)
    contacts = [f"c{i}" for i in range(20)]
    # the contacts spread over the shards
    assert len(set(shard_of(pa.array(contacts), 4).tolist())) == 4
    report = st.ingest_events(
        [form(f"e{i}", c, "2026-11-20T10:00:00Z") for i, c in enumerate(contacts)]
    )
    assert report.triggers is not None and report.triggers.fired == 20
    got = deliveries(st)
    assert sorted(d.contact_id for d in got) == sorted(contacts)
    assert all(d.status == "reserved" and d.key.startswith("main:") for d in got)
    # the same event again (and the same id with another contact): no firing
    again = st.ingest_events([form("e0", "c0", "2026-11-20T10:00:00Z")])
    other = st.ingest_events([form("e1", "c7", "2026-11-20T11:00:00Z")])
    assert (again.duplicates, other.duplicates) == (1, 1)
    assert len(deliveries(st)) == 20
    # DND over the shared log: a second form the same day is suppressed
    st.ingest_events([form("f1", "c3", "2026-11-20T12:00:00Z")])
    late = [d for d in deliveries(st) if d.contact_id == "c3"]
    assert sorted(d.status for d in late) == ["reserved", "suppressed"]
    # nothing left for a catch-up, over every shard
    assert st.triggers.catch_up().events == 0
    # reopened, the saved triggers are the node's
    reopened = audience.open(str(st.path))
    assert [t.name for t in reopened.triggers.defs.list_triggers()] == [SEED_TRIGGER]


def test_once_per_contact_holds_per_contact_across_shards(tmp_path: Path) -> None:
    st = _triggers_store(tmp_path, 3)
    add(st, 'on form_compiled\ndo webhook(url: "https://hook.example/x")\nonce per contact')
    st.ingest_events([form(f"a{i}", f"c{i}", "2026-11-01T10:00:00Z") for i in range(6)])
    st.ingest_events([form(f"b{i}", f"c{i}", "2026-11-02T10:00:00Z") for i in range(6)])
    got = deliveries(st)
    assert sorted(d.contact_id for d in got) == [f"c{i}" for i in range(6)]


def test_what_needs_the_whole_node_at_once_is_refused(sharded: ShardedNode) -> None:
    runner = CliRunner()
    s = str(sharded.path)
    r = runner.invoke(cli, ["triggers", "dry-run", s])
    assert r.exit_code == 1 and "does not work on a sharded node yet" in r.output
    with pytest.raises(StoreError, match="does not work on a sharded node yet"):
        sharded.triggers.journeys  # noqa: B018
    with pytest.raises(StoreError, match="does not work on a sharded node yet"):
        sharded.snapshot()


def test_a_journey_cannot_go_live_on_a_sharded_node(tmp_path: Path) -> None:
    from audience.runtime.journeys.service import JourneyError, JourneyService
    from audience.runtime.plans.clock import ManualClock
    from tests.journeys_support import SCHEMA, T0, tag_journey, text_of

    st = ShardedNode.init(tmp_path / "j", SCHEMA, shards=2)
    svc = JourneyService(st, ManualClock(T0))
    svc.add(text_of(tag_journey()), "tagger.rules")  # a draft is only definitions
    with pytest.raises(JourneyError) as err:
        svc.go_live("Tagger")
    assert err.value.code == "not_ready"
    assert any("journeys do not work on a sharded node yet" in p for p in err.value.problems)
    assert svc.get("Tagger").state == "draft"


def test_a_journey_entering_from_a_segment_is_refused_on_a_sharded_node(tmp_path: Path) -> None:
    """Its entry needs the segment's members over the node and each entrant's
    profile: refused at going live, saying why, with nothing evaluated."""
    from audience.dsl.ast_journeys import EnterSegment
    from audience.runtime.journeys.service import JourneyError, JourneyService
    from audience.runtime.plans.clock import ManualClock
    from tests.journeys_support import SCHEMA, T0, tag_journey, text_of

    st = ShardedNode.init(tmp_path / "j", SCHEMA, shards=2)
    st.save_segment("Milan", 'city = "Milan"')
    st.ingest_profiles([{"contact_id": f"c{i}", "city": "Milan"} for i in range(6)])
    svc = JourneyService(st, ManualClock(T0))
    journey = dataclasses.replace(tag_journey("Milanese"), entry=EnterSegment("Milan"))
    svc.add(text_of(journey), "milanese.rules")
    with pytest.raises(JourneyError) as err:
        svc.go_live("Milanese")
    assert err.value.code == "not_ready"
    assert any("journeys do not work on a sharded node yet" in p for p in err.value.problems)
    assert svc.get("Milanese").state == "draft"
    assert svc.defs.read("select count(*) from journey_segments")[0][0] == 0


def test_nodes_create_makes_a_sharded_node(sharded: ShardedNode) -> None:
    runner = CliRunner()
    s = str(sharded.path)
    r = runner.invoke(cli, ["nodes", "create", s, "eu", "--shards", "2"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["nodes", "list", s])
    assert r.output.split() == ["eu", "main"]
    eu = audience.open(s, node="eu")
    assert isinstance(eu, ShardedNode) and eu.count == 2
    assert eu.schema.version == sharded.schema.version  # main's, copied
    r = runner.invoke(cli, ["nodes", "create", s, "bad", "--shards", "0"])
    assert r.exit_code != 0 and "shards: expected a whole number" in r.output
