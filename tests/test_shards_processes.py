"""Sharded nodes with real processes: two ingests at once keep every event
id once in the node; an ingest killed (SIGKILL) part way is completed by
ingesting the same file again, and the node then answers as one store."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audience.demo import shop
from audience.demo.run import EXAMPLES
from audience.runtime.node import Node, ShardedNode
from tests.helpers.processes import audience, finish, until

SCHEMA = EXAMPLES / "maison.toml"
SEGMENTS = [
    "did purchased at least 2 times in last 90 days",
    'did viewed_product where category = "shoes" in last 30 days',
    "not did purchased",
]


def _events(n: int, contacts: int, first_id: int, seed_shift: int) -> pa.Table:
    """Shop events with ids e<first_id>.., contacts shifted so the same id
    names another contact in another file."""
    table = pa.concat_tables(shop.events(n, contacts, now=shop.DEFAULT_NOW))
    ids = pa.array([f"e{first_id + i}" for i in range(table.num_rows)])
    cid = table.column("contact_id").to_pylist()
    moved = pa.array([f"{c}-{seed_shift}" if i % 3 == 0 else c for i, c in enumerate(cid)])
    table = table.set_column(table.schema.get_field_index("contact_id"), "contact_id", moved)
    return table.set_column(table.schema.get_field_index("id"), "id", ids)


def _holders(node: ShardedNode, ids: pa.Array) -> np.ndarray:
    """How many shards hold each id."""
    return sum(s.known_ids(ids).astype(np.int64) for s in node.shards())


def test_two_ingests_at_once_keep_each_event_id_once(tmp_path: Path) -> None:
    node = ShardedNode.init(tmp_path / "s", SCHEMA, shards=3)
    a = _events(60_000, 3_000, 0, 1)
    b = _events(60_000, 3_000, 30_000, 2)  # e30000.. again, with other contacts
    pq.write_table(a, tmp_path / "a.parquet")
    pq.write_table(b, tmp_path / "b.parquet")
    procs = [audience("ingest", str(node.path), str(tmp_path / f"{x}.parquet")) for x in "ab"]
    outs = [finish(p) for p in procs]
    accepted = [int(o.split(": ")[1].split(" accepted")[0]) for o in outs]
    assert sum(accepted) == 90_000  # 120,000 rows, 30,000 ids twice
    every = pa.array([f"e{i}" for i in range(90_000)])
    assert _holders(node, every).tolist() == [1] * 90_000
    total = sum(s.snapshot().n_events for s in node.shards())
    assert total == 90_000


def test_an_ingest_killed_part_way_is_completed_by_running_it_again(tmp_path: Path) -> None:
    node = ShardedNode.init(tmp_path / "s", SCHEMA, shards=3)
    events = _events(1_500_000, 50_000, 0, 1)  # three batches of 500,000
    path = tmp_path / "e.parquet"
    pq.write_table(events, path)
    first = tmp_path / "s" / "nodes" / "main" / "shards" / "0000" / "manifest.json"
    start = json.loads(first.read_text())["version"]
    proc = audience("ingest", str(node.path), str(path))
    # killed once shard 0 took a batch (the other shards may or may not have)
    until(
        "shard 0 lands a batch",
        lambda: proc.poll() is not None or json.loads(first.read_text())["version"] > start,
    )
    # (two more batches were left to land: the ingest is still running)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    partial = sum(s.snapshot().n_events for s in ShardedNode.open(node.path).shards())
    assert 0 < partial < events.num_rows
    again = ShardedNode.open(node.path)
    report = again.ingest_events(path)
    assert report.accepted + report.duplicates == events.num_rows
    assert sum(s.snapshot().n_events for s in again.shards()) == events.num_rows
    plain = Node.init(tmp_path / "plain", SCHEMA)
    plain.ingest_events(path)
    for text in SEGMENTS:
        want = plain.compile(text).evaluate(as_of=shop.DEFAULT_NOW).ids()
        got = again.compile(text).evaluate(as_of=shop.DEFAULT_NOW).ids()
        assert sorted(got) == sorted(want), text
