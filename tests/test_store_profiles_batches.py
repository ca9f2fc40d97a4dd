"""A profiles file read in many batches is upserted as one: the store equals
the one the same rows make read as a single batch, codes included, and its
profiles are those the rows give ingested a row at a time (the last value
given for a field wins, a null never clears one, a merged list gathers every
row's), whether its columns are upserted on two threads or on one, its
batches' contacts encoded on a thread ahead or not."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.runtime.store import Store, ingest, profiles, sources
from tests.helpers.store_data import dump, schema

ROW = st.fixed_dictionaries(
    {
        "contact_id": st.sampled_from(["c1", "c2", "c3", "c4"]),
        "email": st.sampled_from([None, "a@x.org", "b@x.org"]),
        "city": st.sampled_from([None, "Rome", "Turin"]),
        "points": st.sampled_from([None, 1, 7]),
        "tags": st.sampled_from([None, [], ["vip"], ["new", "vip"], ["x"]]),
    }
)


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "contact_id": pa.array([r["contact_id"] for r in rows], pa.string()),
            "email": pa.array([r["email"] for r in rows], pa.string()),
            "city": pa.array([r["city"] for r in rows], pa.string()),
            "points": pa.array([r["points"] for r in rows], pa.int64()),
            "tags": pa.array([r["tags"] for r in rows], pa.list_(pa.string())),
        }
    )


@settings(max_examples=40, deadline=None)
@given(
    first=st.lists(ROW, max_size=6),
    rows=st.lists(ROW, min_size=1, max_size=20),
    chunk=st.integers(1, 5),
    merge=st.booleans(),
)
def test_batches_of_profiles_equal_rows_one_at_a_time(
    first: list[dict[str, Any]], rows: list[dict[str, Any]], chunk: int, merge: bool
) -> None:
    merge_lists = ["tags"] if merge else []

    def store(chunk_rows: int, threaded: bool) -> Store:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sources, "CHUNK_ROWS", chunk_rows)
            # the columns upserted on two threads, or one after the other; the
            # batches' contacts encoded on a thread ahead, or in line
            mp.setattr(profiles, "PARALLEL_ROWS", 0 if threaded else 10**9)
            mp.setattr(ingest, "PROFILE_AHEAD_ROWS", 0 if threaded else 10**9)
            out = Store.from_arrow(None, None, schema())
            if first:
                out.ingest_profiles(_table(first))
            out.ingest_profiles(_table(rows), merge_lists=merge_lists)
        return out

    batched, whole = store(chunk, threaded=True), store(1000, threaded=False)
    assert dump(batched.snapshot()) == dump(whole.snapshot())
    by_row = Store.from_arrow(None, None, schema())
    if first:
        by_row.ingest_profiles(_table(first))
    for row in rows:
        by_row.ingest_profiles(_table([row]), merge_lists=merge_lists)
    assert _profiles(batched) == _profiles(by_row)


def _profiles(store: Store) -> dict[str, dict[str, Any]]:
    """contact id -> its decoded profile fields."""
    snap = store.snapshot()
    out: dict[str, dict[str, Any]] = {}
    for i, cid in enumerate(snap.contact_ids):
        fields: dict[str, Any] = {}
        for name, col in snap.profile.items():
            if col.valid is not None and not col.valid[i]:
                continue
            values = snap.dictionaries.get(f"profile.{name}")
            if col.kind == "list":
                assert col.offsets is not None and values is not None
                codes = col.values[col.offsets[i] : col.offsets[i + 1]]
                fields[name] = [values.values[c] for c in codes]
            elif col.kind == "code":
                assert values is not None
                fields[name] = values.values[col.values[i]]
            else:
                fields[name] = col.values[i].item()
        out[cid] = fields
    return out


CODES = st.lists(st.integers(0, 5), max_size=5)


@settings(max_examples=200, deadline=None)
@given(
    stored=st.lists(st.one_of(st.none(), CODES), max_size=6),
    given_=st.lists(st.tuples(st.integers(0, 8), CODES), max_size=8),
)
def test_merged_lists_match_a_plain_reading(
    stored: list[list[int] | None], given_: list[tuple[int, list[int]]]
) -> None:
    """``merge_lists``: a contact's stored codes (as stored, repeats too), then
    every given code it lacks, in order, once; a contact's rows all count."""
    import numpy as np

    from audience.runtime.store.profiles import _gather, _union
    from audience.snapshot import Column

    offsets = np.zeros(len(stored) + 1, dtype=np.int32)
    np.cumsum([len(s or []) for s in stored], out=offsets[1:])
    values = np.array([c for s in stored for c in (s or [])], dtype=np.int32)
    valid = np.array([s is not None for s in stored], dtype=bool)
    base = Column("list", values, valid, offsets)
    contacts = np.array([c for c, _ in given_], dtype=np.int32)
    rows = pa.array([codes for _, codes in given_], pa.list_(pa.int32()))
    lists, who = _gather(rows, np.ones(len(given_), dtype=bool), contacts)
    want: dict[int, list[int]] = {}
    for c, codes in given_:
        want.setdefault(c, []).extend(codes)
    assert who.tolist() == sorted(want)
    assert lists.to_pylist() == [want[c] for c in sorted(want)]
    merged = _union(base, len(stored), who, lists).to_pylist()
    for c, got in zip(who.tolist(), merged, strict=True):
        old = list(stored[c] or []) if c < len(stored) else []
        expect = list(old)
        for code in want[c]:
            if code not in expect:
                expect.append(code)
        assert got == expect, (c, stored, given_)


def test_distinct_values_of_a_big_column_are_arrows_even_when_hashes_collide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our hash dedup of mostly-distinct columns gives Arrow's dictionary
    encoding exactly (values in order of first appearance, row indices); a
    hash shared by two strings is noticed and settled by Arrow."""
    import numpy as np
    import pyarrow.compute as pc

    from audience.runtime.store import dictionaries

    values = pa.array([f"u{(i * 7919) % 9000}@x.org" for i in range(12_000)] + ["", "é"])
    want = pc.dictionary_encode(values)
    got, inverse = dictionaries.distinct_values(values)
    assert got.to_pylist() == want.dictionary.to_pylist()
    assert inverse.tolist() == want.indices.to_pylist()
    # every value once (a column of emails or ids): the values are the dictionary
    distinct = pa.array([f"u{(i * 7919) % 12_011}@x.org" for i in range(12_000)])
    got, inverse = dictionaries.distinct_values(distinct)
    assert got.to_pylist() == distinct.to_pylist()
    assert inverse.tolist() == list(range(12_000))
    monkeypatch.setattr(dictionaries, "hash_ids", lambda v: np.zeros(len(v), dtype=np.uint64))
    for column in (values, distinct):
        want = pc.dictionary_encode(column)
        got, inverse = dictionaries.distinct_values(column)
        assert got.to_pylist() == want.dictionary.to_pylist()
        assert inverse.tolist() == want.indices.to_pylist()
