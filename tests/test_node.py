"""The node layer (audience.runtime.node): a node's Store is storage only;
the node compiles, keeps saved segments with their referential checks, and
its trigger engine watches every ingest into its store."""

from __future__ import annotations

from pathlib import Path

import pytest

import audience
from audience.runtime.node import Node, ShardedNode, open_node, open_store
from audience.runtime.shards import ShardedStore
from audience.runtime.store import SegmentInUse, Store
from tests.helpers.triggers import EXAMPLES, deliveries, form, seed
from tests.helpers.triggers import store as store  # the fixture

STORAGE_ONLY = ("compile", "segment_compiler", "triggers", "save_segment", "delete_segment")


def test_the_store_is_storage_and_the_node_composes_the_rest(store: Node) -> None:
    assert isinstance(store.store, Store)
    for name in STORAGE_ONLY:
        assert not hasattr(store.store, name), name
        assert hasattr(store, name), name
    assert (store.path, store.node, store.schema) == (
        store.store.path,
        store.store.node,
        store.store.schema,
    )
    assert store.snapshot() is store.store.snapshot()


def test_an_ingest_into_the_nodes_store_is_matched_by_its_triggers(store: Node) -> None:
    seed(store)
    report = store.store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    assert report.triggers is not None and report.triggers.fired == 1
    [d] = deliveries(store)
    assert (d.contact_id, d.status) == ("c1", "reserved")


def test_a_node_without_triggers_reports_no_matching(store: Node) -> None:
    report = store.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    assert (report.accepted, report.triggers) == (1, None)
    assert deliveries(store) == []


def test_opening_a_node_or_its_storage(store: Node, tmp_path: Path) -> None:
    seed(store)
    root = store.path
    assert root is not None
    node = open_node(root)
    assert isinstance(node, Node) and isinstance(audience.open(str(root)), Node)
    assert type(open_store(root)) is Store
    ShardedNode.init(root, EXAMPLES / "maison.toml", node="wide", shards=2)
    wide = open_node(root, "wide")
    assert isinstance(wide, ShardedNode) and isinstance(wide.store, ShardedStore)
    assert isinstance(open_store(root, "wide"), ShardedStore)
    assert [type(s) for s in wide.shards()] == [Node, Node]
    # every shard's store is watched by its node from the start
    wide.ingest_profiles([{"contact_id": f"c{i}", "email": f"c{i}@example.com"} for i in range(8)])
    report = wide.ingest_events([form(f"e{i}", f"c{i}", "2026-11-20T10:00:00Z") for i in range(8)])
    assert report.triggers is not None and report.triggers.fired == 8
    assert {s.snapshot().n_contacts for s in wide.shards()} != {0}


def test_a_saved_segment_in_use_is_kept(store: Node) -> None:
    seed(store)
    store.save_segment("Buyers", "did purchased")
    store.save_segment("Big buyers", 'in segment "Buyers" and did purchased at least 3 times')
    with pytest.raises(SegmentInUse) as err:
        store.delete_segment("Buyers")
    assert err.value.users == ['segment "Big buyers"']
    assert store.get_segment("Buyers") is not None
    assert store.delete_segment("Big buyers") and store.delete_segment("Buyers")
    assert not store.delete_segment("Buyers")


def test_a_node_in_memory() -> None:
    node = Node.from_arrow(None, None, EXAMPLES / "maison.toml")
    node.ingest_profiles([{"contact_id": "c1", "email": "a@example.com"}])
    node.ingest_events([form("e1", "c1", "2026-11-20T10:00:00Z")])
    seg = node.compile("did form_compiled")
    assert seg.evaluate(as_of="2026-11-21T00:00:00Z").ids() == ["c1"]
    assert node.compile("did form_compiled") is seg  # cached by the node
    assert repr(node) == "Node(memory, node='main')"
