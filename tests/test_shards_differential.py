"""A sharded node answers as one store does: the differential test's random
programs over its random stores (repeated event ids, possibly with another
contact; contacts with a profile only; events on window bounds; time zones;
empty shards), evaluated on 1, 2 and 4 shards and compared with the
reference evaluator and with one store."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.runtime.node import Node, ShardedNode
from audience.runtime.shards import shard_members
from audience.runtime.shards.program import ShardProgram
from audience.timecalc import to_ms
from tests.helpers.differential import compile_program
from tests.reference.data import StoreData, random_store, stores
from tests.reference.programs import GeneratedProgram, programs


def _sharded(root: Path, data: StoreData, count: int, pieces: int) -> ShardedNode:
    """A sharded node holding ``data``, its events ingested in ``pieces`` parts
    (a later part may repeat an id an earlier one landed in another shard)."""
    events, profiles = data.to_arrow()
    node = ShardedNode.init(root, data.schema, shards=count)
    node.ingest_profiles(profiles)
    step = max(1, -(-events.num_rows // pieces))
    for start in range(0, events.num_rows, step):
        node.ingest_events(events.slice(start, step))
    return node


def _members(node: ShardedNode, program: ShardProgram, now_ms: int) -> list[str]:
    out: list[str] = []
    for ref in node.refs():
        out += shard_members(node.shard(ref.index), program, now_ms).to_pylist()
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=stores(max_contacts=8, max_events=40),
    prog=programs(),
    count=st.sampled_from([1, 2, 4]),
    pieces=st.sampled_from([1, 3]),
)
def test_sharded_answer_is_the_one_store_answer(
    data: StoreData, prog: GeneratedProgram, count: int, pieces: int
) -> None:
    want = data.evaluate_segment(prog.segment, prog.saved)
    events, profiles = data.to_arrow()
    one = Node.from_arrow(events, profiles, data.schema).snapshot()
    seg = compile_program(data, prog)
    assert set(seg.evaluate(one, data.now).ids()) == want
    program = ShardProgram(seg.program, seg.timezone, seg.schema_version, seg.plan_text)
    with tempfile.TemporaryDirectory() as tmp:
        node = _sharded(Path(tmp) / "s", data, count, pieces)
        got = _members(node, program, to_ms(data.now))
        assert len(got) == len(set(got))  # a contact lives in one shard only
        assert set(got) == want, seg.plan_text


def test_bigger_random_stores_on_many_shards(tmp_path: Path) -> None:
    # More contacts than shards by far, ingested in parts and record by record
    # (the log of small ingests), through ShardedStore.compile.
    for seed in range(3):
        data = random_store(seed, n_contacts=60, n_events=400)
        events, profiles = data.to_arrow()
        plain = Node.from_arrow(events, profiles, data.schema)
        node = _sharded(tmp_path / f"s{seed}", data, 4, 5)
        small = ShardedNode.init(tmp_path / f"w{seed}", data.schema, shards=3)
        small.ingest_profiles(profiles)
        for row in events.slice(0, 60).to_pylist():
            small.ingest_events(pa.Table.from_pylist([row], schema=events.schema))
        small.ingest_events(events.slice(60))
        for text in [
            "did viewed_product",
            "did purchased at least 2 times in last 30 days",
            "not did viewed_product in last 7 days",
            "did viewed_product then purchased within 3 days",
            'did viewed_product where category = "shoes" and email is set',
        ]:
            want = sorted(plain.compile(text).evaluate(as_of=data.now).ids())
            for st_ in (node, small):
                assert sorted(st_.compile(text).evaluate(as_of=data.now).ids()) == want, text
