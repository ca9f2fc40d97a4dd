"""Sharded nodes: the layout, the hash that picks a contact's shard, the API a
distributed layer builds on, and the answers against one store's."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import audience
from audience.cli import cli
from audience.runtime.node import Node, ShardedNode
from audience.runtime.shards import (
    HASH,
    ShardRef,
    open_shard,
    shard_members,
    shard_of,
)
from audience.runtime.store import StoreError
from tests.helpers.store_data import EVENTS, PROFILES, SCHEMA_TOML, write_jsonl

AS_OF = "2026-11-01T00:00:00Z"
TEXTS = [
    "did purchased",
    'did viewed_product where product_name = "Red Shoes"',
    "did purchased where amount > 100 in last 90 days",
    'email ends with "@example.com"',
    "not did viewed_product",
    "did viewed_product then purchased within 60 days",
]


def _fnv1a_fmix64(text: str) -> int:
    """The shard hash, spelled out: FNV-1a 64 over UTF-8, then murmur3's fmix64."""
    mask = (1 << 64) - 1
    h = 14695981039346656037
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 1099511628211) & mask
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & mask
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & mask
    return h ^ (h >> 33)


IDS = ["c1", "c2", "c42", "42", "", "angela@example.com", "é", "0"]


def test_the_shard_hash_has_fixed_values() -> None:
    # Fixed vectors: a change of the hash would move contacts between the
    # shards of every existing sharded store.
    assert HASH == "fnv1a64-fmix64"
    assert shard_of(pa.array(IDS), 4).tolist() == [3, 0, 2, 0, 2, 0, 3, 0]
    assert shard_of(pa.array(IDS), 7).tolist() == [2, 1, 4, 2, 1, 5, 4, 0]
    assert [_fnv1a_fmix64(i) % 4 for i in IDS] == [3, 0, 2, 0, 2, 0, 3, 0]
    assert [_fnv1a_fmix64(i) % 7 for i in IDS] == [2, 1, 4, 2, 1, 5, 4, 0]
    assert _fnv1a_fmix64("c1") == 5391400105498210435


def test_integer_and_dictionary_ids_hash_as_their_text() -> None:
    ints = pa.array([42, 0, -7, 2**40], pa.int64())
    texts = pa.array(["42", "0", "-7", str(2**40)])
    assert shard_of(ints, 5).tolist() == shard_of(texts, 5).tolist()
    assert shard_of(pa.array([42, 0], pa.int32()), 5).tolist() == shard_of(texts[:2], 5).tolist()
    enc = pa.array(IDS).dictionary_encode()
    assert shard_of(enc, 7).tolist() == shard_of(pa.array(IDS), 7).tolist()
    chunked = pa.chunked_array([IDS[:3], IDS[3:]])
    assert shard_of(chunked, 7).tolist() == shard_of(pa.array(IDS), 7).tolist()
    assert shard_of(pa.array(["c1", None]), 4).tolist() == [3, 0]
    assert shard_of(pa.array(IDS), 1).tolist() == [0] * len(IDS)


def _stores(tmp_path: Path, count: int) -> tuple[ShardedNode, Node]:
    sharded = ShardedNode.init(tmp_path / "sharded", SCHEMA_TOML, shards=count)
    plain = Node.init(tmp_path / "plain", SCHEMA_TOML)
    for st in (sharded, plain):
        st.ingest_profiles(PROFILES)
        st.ingest_events(EVENTS)
    return sharded, plain


def test_layout_of_a_sharded_node(tmp_path: Path) -> None:
    sharded = ShardedNode.init(tmp_path / "s", SCHEMA_TOML, shards=3)
    nd = tmp_path / "s" / "nodes" / "main"
    assert json.loads((nd / "shards.json").read_text()) == {"count": 3, "hash": HASH}
    assert (nd / "schema.toml").is_file()
    assert sorted(p.name for p in (nd / "shards").iterdir()) == ["0000", "0001", "0002"]
    for k in range(3):
        assert (nd / "shards" / f"{k:04d}" / "manifest.json").is_file()
    assert (tmp_path / "s" / "definitions.sqlite").is_file()
    assert sharded.count == 3 and sharded.node == "main"
    # another node of the same store, sharded or not
    ShardedNode.init(tmp_path / "s", SCHEMA_TOML, node="eu", shards=2)
    Node.init(tmp_path / "s", SCHEMA_TOML, node="us")
    assert isinstance(audience.open(str(tmp_path / "s"), node="eu"), ShardedNode)
    assert isinstance(audience.open(str(tmp_path / "s"), node="us"), Node)
    with pytest.raises(StoreError, match=r"node 'eu' is sharded: open it with audience\.open"):
        Node.open(tmp_path / "s", node="eu")


@pytest.mark.parametrize("bad", [0, -1, 5000, True])
def test_a_bad_shard_count_is_refused_and_nothing_is_written(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(StoreError, match="shards: expected a whole number"):
        ShardedNode.init(tmp_path / "s", SCHEMA_TOML, shards=bad)
    assert not (tmp_path / "s").exists()


def test_an_existing_node_is_refused(tmp_path: Path) -> None:
    ShardedNode.init(tmp_path / "s", SCHEMA_TOML, shards=2)
    with pytest.raises(StoreError, match="already a store with a node 'main'"):
        ShardedNode.init(tmp_path / "s", SCHEMA_TOML, shards=2)
    with pytest.raises(StoreError, match="already a store with a node 'main'"):
        Node.init(tmp_path / "s", SCHEMA_TOML)
    with pytest.raises(StoreError, match="is not sharded"):
        Node.init(tmp_path / "t", SCHEMA_TOML)
        ShardedNode.open(tmp_path / "t")


def test_a_damaged_shard_description_is_an_error(tmp_path: Path) -> None:
    ShardedNode.init(tmp_path / "s", SCHEMA_TOML, shards=2)
    meta = tmp_path / "s" / "nodes" / "main" / "shards.json"
    meta.write_text(json.dumps({"count": 2, "hash": "python-hash"}))
    with pytest.raises(StoreError, match="unknown shard hash 'python-hash'"):
        audience.open(str(tmp_path / "s"))
    meta.write_text("{")
    with pytest.raises(StoreError, match="unreadable shard description"):
        audience.open(str(tmp_path / "s"))


@pytest.mark.parametrize("count", [1, 2, 4])
def test_the_sharded_answer_is_the_one_store_answer(tmp_path: Path, count: int) -> None:
    sharded, plain = _stores(tmp_path, count)
    reopened = audience.open(str(tmp_path / "sharded"))
    assert isinstance(reopened, ShardedNode)
    for text in TEXTS:
        want = plain.compile(text).evaluate(as_of=AS_OF)
        for st in (sharded, reopened):
            got = st.compile(text).evaluate(as_of=AS_OF)
            assert type(got) is type(want)
            assert sorted(got.ids()) == sorted(want.ids()), text
            assert len(got) == len(want)
            table = got.to_arrow()
            assert table.column_names == ["contact_id"]
            assert sorted(table.column(0).cast(pa.string()).to_pylist()) == sorted(want.ids())


def test_contacts_spread_over_the_shards_by_the_hash(tmp_path: Path) -> None:
    sharded, plain = _stores(tmp_path, 4)
    every = plain.snapshot().contact_ids
    seen: list[str] = []
    for k, st in enumerate(sharded.shards()):
        ids = list(st.snapshot().contact_ids)
        assert shard_of(pa.array(ids, pa.string()), 4).tolist() == [k] * len(ids)
        seen += ids
    assert sorted(seen) == sorted(every)


def test_refs_open_shard_and_shard_members(tmp_path: Path) -> None:
    sharded, plain = _stores(tmp_path, 4)
    refs = sharded.refs()
    assert refs == [ShardRef(str(tmp_path / "sharded"), "main", k, 4) for k in range(4)]
    assert pickle.loads(pickle.dumps(refs[2])) == refs[2]
    now = 1_793_404_800_000  # 2026-11-01T00:00:00Z
    for text in TEXTS:
        program = sharded.compile_program(text)
        # plain data: what a worker in another process receives
        program = pickle.loads(pickle.dumps(program))
        members: list[str] = []
        for ref in refs:
            part = shard_members(open_shard(ref), program, now)
            assert isinstance(part, pa.Array)
            members += part.to_pylist()
        assert sorted(members) == sorted(plain.compile(text).evaluate(as_of=now).ids()), text


def test_a_program_compiled_once_serves_shards_with_other_dictionaries(tmp_path: Path) -> None:
    # Shard dictionaries differ (each holds the values of its own contacts'
    # events); the program names values by their text, resolved per shard.
    sharded, _ = _stores(tmp_path, 4)
    program = sharded.compile_program('did viewed_product where product_name = "Red Shoes"')
    sizes = {len(s.snapshot().dictionaries.get("product_name", ())) for s in sharded.shards()}
    assert len(sizes) > 1
    found = [shard_members(s, program, 1_793_404_800_000).to_pylist() for s in sharded.shards()]
    assert sorted(i for part in found for i in part) == ["c1"]


def test_the_snapshot_of_a_sharded_node_is_refused_clearly(tmp_path: Path) -> None:
    sharded, _ = _stores(tmp_path, 2)
    with pytest.raises(StoreError, match=r"is sharded \(2 shards\).*not work on a sharded"):
        sharded.snapshot()


def test_explain_sums_the_shards(tmp_path: Path) -> None:
    sharded, plain = _stores(tmp_path, 4)
    text = "did purchased or not did viewed_product"
    got = sharded.compile(text).evaluate(as_of=AS_OF, explain=True).explain
    want = plain.compile(text).evaluate(as_of=AS_OF, explain=True).explain
    assert got is not None and want is not None
    assert got["shards"] == 4
    for key in ("count", "universe"):
        assert got[key] == want[key]
    assert got["operands"] == want["operands"]
    assert [s["what"] for s in got["steps"]] == [s["what"] for s in want["steps"]]
    assert [s.get("count") for s in got["steps"]] == [s.get("count") for s in want["steps"]]
    assert got["columns"] == want["columns"]
    assert got["plan"] == want["plan"]


def test_cli_init_ingest_eval_on_a_sharded_node(tmp_path: Path) -> None:
    runner = CliRunner()
    schema = tmp_path / "schema.toml"
    schema.write_text(SCHEMA_TOML)
    s = str(tmp_path / "s")
    r = runner.invoke(cli, ["init", s, "--schema", str(schema), "--shards", "3"])
    assert r.exit_code == 0, r.output
    assert "created" in r.output and "3 shards" in r.output
    events = write_jsonl(tmp_path / "e.jsonl", [*EVENTS, {"contact_id": "c1", "type": "x"}])
    profiles = write_jsonl(tmp_path / "p.jsonl", PROFILES)
    r = runner.invoke(cli, ["ingest", s, str(profiles), "--profiles"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["ingest", s, str(events)])
    assert r.exit_code == 0, r.output
    assert f"{len(EVENTS)} accepted, 1 rejected, 0 duplicates" in r.output
    plain = Node.init(tmp_path / "plain", SCHEMA_TOML)
    plain.ingest_profiles(PROFILES)
    plain.ingest_events(EVENTS)
    # again: as one store, the events with an id are duplicates
    again = plain.ingest_events(events)
    r = runner.invoke(cli, ["ingest", s, str(events)])
    assert f"{again.accepted} accepted, 1 rejected, {again.duplicates} duplicates" in r.output
    assert again.duplicates == len([e for e in EVENTS if "id" in e])
    for text in TEXTS:
        r = runner.invoke(cli, ["eval", s, "-e", text, "--as-of", AS_OF, "--format", "ids"])
        assert r.exit_code == 0, r.output
        want = plain.compile(text).evaluate(as_of=AS_OF).ids()
        assert sorted(r.output.split()) == sorted(want)
    r = runner.invoke(cli, ["eval", s, "-e", "did purchased", "--as-of", AS_OF, "--explain"])
    assert r.exit_code == 0, r.output
    assert "over 3 shards" in r.output
    for fmt in ("csv", "jsonl"):
        fields = ["--as-of", AS_OF, "--format", fmt, "--fields", "email,city"]
        got = runner.invoke(cli, ["eval", s, "-e", "not did purchased", *fields])
        want = runner.invoke(
            cli, ["eval", str(tmp_path / "plain"), "-e", "not did purchased", *fields]
        )
        assert got.exit_code == 0, got.output
        assert sorted(got.output.splitlines()) == sorted(want.output.splitlines())
        assert "@" in got.output


def test_rejects_keep_their_lines(tmp_path: Path) -> None:
    sharded = ShardedNode.init(tmp_path / "s", SCHEMA_TOML, shards=4)
    rows = [*EVENTS, {"id": "x1", "contact_id": "c9", "type": "nope", "ts": 1}, *EVENTS[:1]]
    path = write_jsonl(tmp_path / "e.jsonl", rows)
    report = sharded.ingest_events(path)
    assert (report.accepted, report.rejected, report.duplicates) == (len(EVENTS), 1, 1)
    [reject] = sharded.rejected()
    assert reject.line == len(EVENTS) + 1 and reject.field == "type"
    assert '"x1"' in reject.raw
    assert np.array_equal(report.rejects[0].line, reject.line)


def test_a_program_for_another_schema_is_refused(tmp_path: Path) -> None:
    sharded, _ = _stores(tmp_path, 2)
    program = sharded.compile_program("did purchased")
    other = Node.init(tmp_path / "other", '[profile]\nemail = "string"\n[events.purchased]\n')
    with pytest.raises(ValueError, match="compiled for schema"):
        shard_members(other, program, 0)


def test_empty_shards_and_an_empty_node(tmp_path: Path) -> None:
    node = ShardedNode.init(tmp_path / "s", SCHEMA_TOML, shards=4)
    for text in ("did purchased", "not did purchased", "email is set"):
        hits = node.compile(text).evaluate(as_of=AS_OF, explain=True)
        assert len(hits) == 0 and hits.ids() == [] and hits.to_arrow().num_rows == 0
        assert hits.explain is not None and hits.explain["universe"] == 0
    # one contact with a profile only: three shards stay empty
    node.ingest_profiles([{"contact_id": "solo", "email": "solo@example.com"}])
    assert sorted(len(s.snapshot().contact_ids) for s in node.shards()) == [0, 0, 0, 1]
    assert node.compile("not did purchased").evaluate(as_of=AS_OF).ids() == ["solo"]
    assert node.compile("email is set").evaluate(as_of=AS_OF).ids() == ["solo"]
    assert node.compile("did purchased").evaluate(as_of=AS_OF).ids() == []
