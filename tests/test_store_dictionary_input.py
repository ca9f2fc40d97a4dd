"""Dictionary-encoded string columns (how Parquet files are read, and what a
pandas categorical becomes) are checked and encoded per distinct value: the
store they make must equal the one the same rows as plain strings make, codes
included, rejects and duplicates included."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.runtime.store import Store, StoreError, sources
from audience.runtime.store.ahead import ahead
from tests.helpers.store_data import dump, events_table, schema

STRINGS = ["contact_id", "type", "context", "product_name", "category", "order_id", "form_name"]

ROW = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["e1", "e2", "e3", "e4", "e5", None]),
        "contact_id": st.sampled_from(["c1", "c2", "c3", "", None]),
        "type": st.sampled_from(["viewed_product", "purchased", "form_compiled", "bogus", None]),
        "ts": st.sampled_from([1_760_000_000_000, 1_760_000_000_000 + 86_400_000, None]),
        "context": st.sampled_from([None, "WEB", "ECOMMERCE", "nowhere"]),
        "product_name": st.sampled_from([None, None, "red shoes", "hat", ""]),
        "category": st.sampled_from([None, "shoes", "hats"]),
        "order_id": st.sampled_from([None, "o1", "o2"]),
        "form_name": st.sampled_from([None, "signup"]),
    }
)


def plain_table(rows: list[dict[str, Any]]) -> pa.Table:
    cols: dict[str, pa.Array] = {}
    for name in ROW_NAMES:
        values = [r[name] for r in rows]
        if name == "ts":
            cols[name] = pa.array(values, pa.timestamp("ms", tz="UTC"))
        else:
            cols[name] = pa.array(values, pa.string())
    return pa.table(cols)


ROW_NAMES = ["id", "contact_id", "type", "ts", "context", "product_name", "category"]
ROW_NAMES += ["order_id", "form_name"]


def as_dictionary(col: pa.Array, data: st.DataObject) -> pa.Array:
    """``col`` dictionary-encoded in an arbitrary way: a shuffled dictionary
    with unused and repeated entries, any index type, string or large_string."""
    values = sorted({v for v in col.to_pylist() if v is not None})
    extra = data.draw(st.lists(st.sampled_from(["unused", "zz", *values]), max_size=3))
    dictionary = data.draw(st.permutations(values + extra))
    if not dictionary:
        dictionary = ["unused"]
    where: dict[str, list[int]] = {}
    for i, v in enumerate(dictionary):
        where.setdefault(v, []).append(i)
    # A value listed twice may be referred to by either entry.
    indices = [None if v is None else data.draw(st.sampled_from(where[v])) for v in col.to_pylist()]
    itype = data.draw(st.sampled_from([pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8()]))
    vtype = data.draw(st.sampled_from([pa.string(), pa.large_string()]))
    return pa.DictionaryArray.from_arrays(pa.array(indices, itype), pa.array(dictionary, vtype))


def reject_view(store: Store) -> list[tuple[Any, ...]]:
    return [(r.line, r.field, r.reason, r.raw) for r in store.rejected()]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=30), chunk=st.integers(1, 8), data=st.data())
def test_dictionary_columns_give_the_store_plain_strings_give(
    rows: list[dict[str, Any]], chunk: int, data: st.DataObject
) -> None:
    plain = plain_table(rows)
    encoded = plain
    for name in STRINGS:
        if data.draw(st.booleans(), label=f"encode {name}"):
            i = encoded.schema.get_field_index(name)
            encoded = encoded.set_column(i, name, as_dictionary(plain.column(name).chunk(0), data))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sources, "CHUNK_ROWS", chunk)  # batches cut through the dictionaries
        a = Store.from_arrow(plain, None, schema())
        b = Store.from_arrow(encoded, None, schema())
    assert dump(b.snapshot()) == dump(a.snapshot())
    assert reject_view(b) == reject_view(a)


def test_a_parquet_file_of_many_row_groups_reads_as_dictionaries_to_the_same_store(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Each row group has its own dictionary, and a batch is cut inside a
    row group: the codes are still given in order of first appearance."""
    base = events_table()
    table = pa.concat_tables([base] * 5)
    ids = [f"e{i}" for i in range(table.num_rows)]
    table = table.set_column(0, "id", pa.array(ids[::-1]))  # ids unique, rows repeated
    path = tmp_path / "e.parquet"
    pq.write_table(table, path, row_group_size=4)
    read = pq.ParquetFile(path, read_dictionary=["product_name"]).read()
    assert pa.types.is_dictionary(read.schema.field("product_name").type)
    monkeypatch.setattr(sources, "CHUNK_ROWS", 3)
    # our reader asks for dictionaries of the columns named, and only those
    src = sources.open_source(path, {}, ["product_name", "contact_id"])
    first = next(src.batches).table.schema
    assert pa.types.is_dictionary(first.field("product_name").type)
    assert pa.types.is_dictionary(first.field("contact_id").type)
    assert not pa.types.is_dictionary(first.field("category").type)
    src.batches.close()  # type: ignore[attr-defined]
    a = Store.init(tmp_path / "a", schema())
    a.ingest_events(table)  # a plain Arrow table
    b = Store.init(tmp_path / "b", schema())
    report = b.ingest_events(path)
    assert (report.accepted, report.rejected, report.duplicates) == (table.num_rows, 0, 0)
    assert dump(b.snapshot()) == dump(a.snapshot())


def test_a_first_use_in_a_duplicate_row_does_not_order_the_codes(tmp_path: Path) -> None:
    """A value first seen in a row dropped as a duplicate gets its code where
    a kept row first uses it, as plain strings do."""
    first = pa.table({"id": ["x"], "contact_id": ["c1"], "type": ["viewed_product"]})
    first = first.append_column("ts", pa.array([1_760_000_000_000], pa.timestamp("ms", tz="UTC")))
    rows = {
        "id": ["x", "y", "z"],
        "contact_id": ["c9", "c2", "c9"],
        "type": ["viewed_product"] * 3,
        "ts": pa.array([1_760_000_000_000] * 3, pa.timestamp("ms", tz="UTC")),
        "product_name": ["hat", "shoes", "hat"],
    }
    plain = pa.table(rows)
    encoded = plain
    for name in ("contact_id", "product_name"):
        i = plain.schema.get_field_index(name)
        encoded = encoded.set_column(i, name, plain.column(name).chunk(0).dictionary_encode())
    stores = []
    for table in (plain, encoded):
        s = Store.from_arrow(first, None, schema())
        report = s.ingest_events(table)
        assert (report.accepted, report.duplicates) == (2, 1)
        stores.append(dump(s.snapshot()))
    assert stores[0] == stores[1]
    assert stores[0]["contact_ids"] == ["c1", "c2", "c9"]
    assert stores[0]["dictionaries"]["product_name"] == ["shoes", "hat"]


def test_a_dictionary_index_out_of_range_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "s", schema())
    store.ingest_events(events_table())
    store.checkpoint()
    before = dump(store.snapshot())
    bad = pa.DictionaryArray.from_arrays(
        pa.array([0, 7], pa.int32()), pa.array(["hat"]), safe=False
    )
    table = pa.table(
        {
            "id": ["n1", "n2"],
            "contact_id": ["c1", "c2"],
            "type": ["viewed_product"] * 2,
            "ts": pa.array([1_760_000_000_000] * 2, pa.timestamp("ms", tz="UTC")),
            "product_name": bad,
        }
    )
    big = pa.concat_tables([table] * 600)  # past the log: the regular path
    big = big.set_column(0, "id", pa.array([f"n{i}" for i in range(big.num_rows)]))
    with pytest.raises(StoreError, match=r"product_name.*index out of range"):
        store.ingest_events(big)
    # the thread that checks batches ahead stopped with the failed ingest
    assert not [t for t in threading.enumerate() if t.name == "ingest-check"]
    assert dump(Store.open(tmp_path / "s").snapshot()) == before
    assert dump(store.snapshot()) == before


# ----------------------------------------------------------------- ahead()
def test_ahead_keeps_order_and_raises_a_failure_in_its_place() -> None:
    def items() -> Any:
        yield from range(5)
        raise ValueError("the sixth")

    seen = []
    with pytest.raises(ValueError, match="the sixth"):
        for item in ahead(items(), "t"):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_ahead_stops_its_thread_when_the_consumer_stops() -> None:
    made: list[int] = []

    def items() -> Any:
        for i in range(1000):
            made.append(i)
            yield i

    gen = ahead(items(), "ahead-test")
    assert next(gen) == 0
    gen.close()
    assert not [t for t in threading.enumerate() if t.name == "ahead-test"]
    assert len(made) <= 3  # one taken, one waiting in the queue, one being made


def test_ahead_runs_the_producer_in_another_thread() -> None:
    names: list[str] = []

    def items() -> Any:
        for i in range(3):
            names.append(threading.current_thread().name)
            yield i

    assert list(ahead(items(), "ahead-other")) == [0, 1, 2]
    assert set(names) == {"ahead-other"}
    assert np.all(np.array(names) != threading.current_thread().name)


INT_ROW = st.fixed_dictionaries(
    {
        "id": st.sampled_from([1, 2, 3, 10, None]),
        "contact_id": st.sampled_from([7, 12, -3, 0, 2**40, None]),
        "type": st.sampled_from(["viewed_product", "purchased", "bogus"]),
        "ts": st.sampled_from([1_760_000_000_000, 1_760_000_000_000 + 86_400_000, None]),
    }
)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(INT_ROW, min_size=1, max_size=30), chunk=st.integers(1, 8))
def test_integer_contact_ids_give_the_store_their_text_gives(
    rows: list[dict[str, Any]], chunk: int
) -> None:
    """Integer contact ids are made text once per distinct value (a
    dictionary): the store, codes, rejects and duplicates included, is the
    one the same ids written as strings make, with or without event ids."""

    def table(text: bool, with_ids: bool) -> pa.Table:
        cols: dict[str, pa.Array] = {}
        for name in ("id", "contact_id") if with_ids else ("contact_id",):
            values = [r[name] for r in rows]
            cols[name] = (
                pa.array([None if v is None else str(v) for v in values], pa.string())
                if text
                else pa.array(values, pa.int64())
            )
        cols["type"] = pa.array([r["type"] for r in rows], pa.string())
        cols["ts"] = pa.array([r["ts"] for r in rows], pa.timestamp("ms", tz="UTC"))
        return pa.table(cols)

    for with_ids in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sources, "CHUNK_ROWS", chunk)
            a = Store.from_arrow(table(True, with_ids), None, schema())
            b = Store.from_arrow(table(False, with_ids), None, schema())
        assert dump(b.snapshot()) == dump(a.snapshot())
        assert [(r.line, r.field, r.reason) for r in b.rejected()] == [
            (r.line, r.field, r.reason) for r in a.rejected()
        ]


def test_integer_ids_become_a_dictionary_of_their_distinct_texts() -> None:
    from audience.runtime.store.coerce import coerce

    col = pa.array([5, 5, None, 7, 5], pa.int64())
    out, bad = coerce(col, "string", numbers_as_text=True, keep_dictionary=True)
    assert pa.types.is_dictionary(out.type) and out.dictionary.to_pylist() == ["5", "7"]
    assert out.to_pylist() == ["5", "5", None, "7", "5"] and not bad.any()
    plain, _ = coerce(col, "string", numbers_as_text=True)  # event ids: plain strings
    assert plain.type == pa.string() and plain.to_pylist() == ["5", "5", None, "7", "5"]


def test_profile_columns_a_file_keeps_as_small_dictionaries_read_so_to_the_same_store(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Profile string columns that a Parquet file keeps as small dictionaries
    are read as dictionary arrays (each row group its own); a column of
    distinct values (emails, whose dictionary page overflows) is read as
    strings; either way the store is the one the plain rows make, codes
    included, a contact named in two row groups included."""
    rng = np.random.default_rng(7)
    n = 30_000
    emails = [None if i % 7 == 0 else f"{rng.bytes(16).hex()}@x.org" for i in range(n)]
    table = pa.table(
        {
            "contact_id": [f"c{i % 25_000}" for i in range(n)],  # c0..c4999 twice
            "email": pa.array(emails, pa.string()),
            "city": pa.array([[None, "Rome", "Milan", "Turin"][i % 4] for i in range(n)]),
            "points": pa.array(range(n), pa.int64()),
        }
    )
    path = tmp_path / "p.parquet"
    pq.write_table(table, path, row_group_size=10_000)
    meta = pq.read_metadata(path)
    assert sources.small_dictionary(meta, "city")
    assert not sources.small_dictionary(meta, "email")
    src = sources.open_source(path, {}, small_dictionaries=["city", "email"])
    first = next(src.batches).table.schema
    assert pa.types.is_dictionary(first.field("city").type)
    assert not pa.types.is_dictionary(first.field("email").type)
    src.batches.close()  # type: ignore[attr-defined]
    monkeypatch.setattr(sources, "CHUNK_ROWS", 4_000)  # batches cut inside row groups
    a = Store.init(tmp_path / "a", schema())
    a.ingest_profiles(table)  # a plain Arrow table
    b = Store.init(tmp_path / "b", schema())
    assert b.ingest_profiles(path).accepted == n
    assert dump(b.snapshot()) == dump(a.snapshot())
