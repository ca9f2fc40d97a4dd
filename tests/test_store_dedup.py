"""The duplicate index (audience.runtime.store.dedup) and the streaming ingest:
exact duplicate detection, also when 64-bit hashes collide, across batches,
ingests and flushed partitions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience.runtime.store import Store, compact, ingest, sources, wal
from audience.runtime.store import dedup as dedup_mod
from audience.runtime.store.dedup import hash_ids, merge_runs, sort_order
from audience.schema import Schema

SCHEMA = Schema.from_toml(
    """
[events.viewed]
category = "string"
"""
)


def _events(ids: Sequence[str | None], start_ms: int = 1_780_000_000_000) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "contact_id": pa.array([f"c{i % 7}" for i in range(n)]),
            "type": pa.array(["viewed"] * n),
            "ts": pa.array(np.arange(n, dtype=np.int64) * 3_600_000 + start_ms),
            "category": pa.array(["shoes" if i % 2 else "bags" for i in range(n)]),
        }
    )


def _stored_ids(store: Store) -> list[str | None]:
    snap = store.snapshot()
    out: list[str | None] = []
    for p in store._backend.read_manifest().partitions:
        out += store._backend.read_table(p.file).column("__id").to_pylist()
    assert len(out) == snap.n_events
    return out


def test_hash_is_deterministic_and_spreads() -> None:
    ids = pa.array([f"e{i}" for i in range(10_000)])
    h = hash_ids(ids)
    assert h.dtype == np.uint64 and len(np.unique(h)) == 10_000
    assert (hash_ids(ids.slice(5, 3)) == h[5:8]).all()  # offsets of a slice are honoured


def test_sort_order_is_stable_and_merge_is_sorted() -> None:
    h = np.array([5, 1, 5, 3, 1, 5], dtype=np.uint64)
    assert sort_order(h).tolist() == [1, 4, 3, 0, 2, 5]
    rng = np.random.default_rng(1)
    a = np.sort(rng.integers(0, 50, 40).astype(np.uint64))
    b = np.sort(rng.integers(0, 50, 25).astype(np.uint64))
    h2, loc = merge_runs((a, np.arange(40)), (b, np.arange(100, 125)))
    assert (np.diff(h2.astype(np.int64)) >= 0).all()
    assert sorted(loc.tolist()) == list(range(40)) + list(range(100, 125))
    assert (h2[np.argsort(loc)] == np.concatenate([a, b])).all()
    # equal hashes: a's entries first; either run may be empty or run out first
    for x, y in ((a, b), (b, a), (a[:0], b), (a, b[:0]), (a[:3], a[:3])):
        hx, lx = merge_runs((x, np.arange(len(x))), (y, np.arange(100, 100 + len(y))))
        want = sorted([(v, 0, i) for i, v in enumerate(x)] + [(v, 1, i) for i, v in enumerate(y)])
        assert hx.tolist() == [v for v, _, _ in want]
        assert lx.tolist() == [i + 100 * r for _, r, i in want]


def test_the_filter_never_misses_an_id_and_rarely_holds_a_stranger() -> None:
    rng = np.random.default_rng(7)
    h = rng.integers(0, 2**63, 300_000, dtype=np.uint64) << np.uint64(1)
    runs = [(np.sort(h[:100_000]), np.arange(100_000))]
    f = dedup_mod.Filter(runs)
    for part in (h[100_000:200_000], h[200_000:]):  # grown as runs are added
        runs.append((np.sort(part), np.arange(len(part))))
        f.runs = list(runs)
        f.add(np.sort(part))
    assert f.maybe(h).all()
    strangers = rng.integers(0, 2**63, 200_000, dtype=np.uint64) << np.uint64(1) | np.uint64(1)
    assert f.maybe(strangers).mean() < 0.02  # 16 bits and 3 of them per id: about 1%


@pytest.mark.parametrize("collide", [False, True])
def test_duplicates_are_exact(monkeypatch: pytest.MonkeyPatch, collide: bool) -> None:
    if collide:
        # Four hash values for all ids: nearly every lookup is a collision
        # that only the full-id comparison can settle.
        real = dedup_mod.hash_ids
        monkeypatch.setattr(dedup_mod, "hash_ids", lambda ids: real(ids) % np.uint64(4))
    monkeypatch.setattr(sources, "CHUNK_ROWS", 7)  # several batches per ingest
    monkeypatch.setattr(dedup_mod, "SPILL_IDS", 10)  # and runs written mid-ingest
    store = Store.from_arrow(None, None, SCHEMA)
    first = [f"e{i}" for i in range(20)] + ["e3", None, "e19", None]
    r = store.ingest_events(_events(first))
    assert (r.accepted, r.duplicates) == (22, 2)
    second = ["e5", "x1", "x1", "e20", None, "e0", "x2"]
    r = store.ingest_events(_events(second, start_ms=1_790_000_000_000))
    assert (r.accepted, r.duplicates) == (4, 3)
    kept = [i for i in _stored_ids(store) if i is not None]
    assert sorted(kept) == sorted({f"e{i}" for i in range(21)} | {"x1", "x2"})


def test_flushed_partitions_and_index_survive_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "CHUNK_ROWS", 50)
    monkeypatch.setattr(ingest, "FLUSH_ROWS", 60)
    monkeypatch.setattr(ingest, "PART_ROWS", 80)
    monkeypatch.setattr(dedup_mod, "SPILL_IDS", 120)
    monkeypatch.setattr(dedup_mod, "MAX_RUN", 250)
    monkeypatch.setattr(compact, "PARTITION_ROWS", 1)  # the flushes as they were written
    path = tmp_path / "ev.parquet"
    ids = [f"e{i}" for i in range(400)]
    table = _events(ids)
    # Out of time order, so partitions are sorted on flush.
    pq.write_table(table.take(pa.array(np.random.default_rng(3).permutation(400))), path)
    store = Store.init(tmp_path / "s", SCHEMA)
    r = store.ingest_events(path)
    assert (r.accepted, r.duplicates) == (400, 0)
    m = store._backend.read_manifest()
    # a month is written once it reaches PART_ROWS: at most one batch more
    assert max(p.rows for p in m.partitions) < 80 + 50 and len(m.partitions) > 2
    for p in store.snapshot().partitions:
        assert (np.diff(p.ts) >= 0).all()
    again = Store.open(tmp_path / "s")
    r = again.ingest_events(_events([*ids[::3], "new"]))
    assert (r.accepted, r.duplicates) == (1, 134)
    assert again.snapshot().n_events == 401
    assert sorted(str(i) for i in _stored_ids(again)) == sorted([*ids, "new"])


def test_a_store_without_an_index_is_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal, "MAX_ROWS", 0)  # the regular path, which writes the index
    store = Store.init(tmp_path / "s", SCHEMA)
    store.ingest_events(_events(["a", "b", "c"]))
    # As written before the index existed: ids only.
    backend: Any = store._backend
    m = backend.read_manifest()
    m.id_index = []
    backend.commit(m)
    index_dir = tmp_path / "s/nodes/main/index"
    orphans = {f"index/{p.name}" for p in index_dir.iterdir()}  # unlisted now
    r = Store.open(tmp_path / "s").ingest_events(_events(["b", "c"]))
    assert (r.accepted, r.duplicates) == (0, 2)
    assert sum(c for _, c in backend.read_manifest().id_index) == 3  # indexed, though nothing new
    r = Store.open(tmp_path / "s").ingest_events(_events(["b", "d"]))
    assert (r.accepted, r.duplicates) == (1, 1)
    m = backend.read_manifest()
    assert sum(c for _, c in m.id_index) == 4
    # merged runs leave no files behind: the directory holds the listed runs only
    listed = {name for name, _ in m.id_index}
    assert {f"index/{p.name}" for p in index_dir.iterdir()} == listed | orphans


@pytest.mark.parametrize("collide", [False, True])
def test_big_dictionaries_are_looked_up_by_hash(
    monkeypatch: pytest.MonkeyPatch, collide: bool
) -> None:
    from audience.runtime.store import dictionaries as dmod

    monkeypatch.setattr(dmod, "HASHED_MIN", 3)
    if collide:
        real = dmod.hash_ids
        monkeypatch.setattr(dmod, "hash_ids", lambda v: real(v) % np.uint64(2))
    st = dmod.DictState({})
    assert st.encode("k", pa.array(["a", "b", "c", "a"])).tolist() == [0, 1, 2, 0]
    assert st.encode("k", pa.array(["d", "a", "e", "d", "c"])).tolist() == [3, 0, 4, 3, 2]
    again = dmod.DictState({"k": st.get("k")})
    codes = again.encode("k", pa.array(["e", "z", "a", "y", "z", "b"]))
    assert codes.tolist() == [4, 5, 0, 6, 5, 1]
    assert again.get("k").to_pylist() == ["a", "b", "c", "d", "e", "z", "y"]
    assert again.added()["k"].to_pylist() == ["z", "y"]


def test_parquet_streams_in_batches_with_row_indexes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "CHUNK_ROWS", 4)
    table = _events([f"e{i}" for i in range(10)])
    types = table.column("type").to_pylist()
    types[9] = "bogus"
    table = table.set_column(2, "type", pa.array(types))
    path = tmp_path / "ev.parquet"
    pq.write_table(table, path, row_group_size=3)
    store = Store.from_arrow(None, None, SCHEMA)
    r = store.ingest_events(path)
    assert (r.accepted, r.rejected) == (9, 1)
    assert r.rejects[0].where == "row index 9" and '"bogus"' in r.rejects[0].raw
    assert store.snapshot().n_events == 9


def test_hash_table_grows_and_keeps_first_codes() -> None:
    from audience.runtime.store.hashing import HashTable

    t = HashTable()
    h = hash_ids(pa.array([f"v{i}" for i in range(5000)]))
    t.insert(h[:3000], np.arange(3000))
    t.insert(h[2000:], np.arange(2000, 5000) + 10_000)  # 2000..2999 are already in
    found = t.find(h)
    assert found[:3000].tolist() == list(range(3000))
    assert found[3000:].tolist() == list(range(13_000, 15_000))
    assert t.find(hash_ids(pa.array(["absent"]))).tolist() == [-1]


def test_hash_table_encode_gives_known_codes_and_numbers_new_hashes_in_order() -> None:
    from audience.runtime.store.hashing import HashTable

    t = HashTable()
    known = hash_ids(pa.array([f"v{i}" for i in range(3000)]))
    t.insert(known, np.arange(3000))
    given = pa.array(["w0", "v5", "w1", "w0", "v2999"] + [f"x{i}" for i in range(2000)])
    codes, intro = t.encode(hash_ids(given), 3000)
    assert codes[:5].tolist() == [3000, 5, 3001, 3000, 2999]
    assert codes[5:].tolist() == list(range(3002, 5002))  # (the table grew first)
    assert intro.tolist() == [0, 2, *range(5, 2005)]
    assert t.find(hash_ids(pa.array(["w1", "x1999"]))).tolist() == [3001, 5001]
