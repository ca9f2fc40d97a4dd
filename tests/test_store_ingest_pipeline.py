"""The pieces of the events ingest's pipeline that replaced slower equivalents
(hashes sorted as packed keys, months found from the batch's ends, validity
bitmaps unpacked, dictionary entries in order of first use), each checked
against the plain version it replaced, and an ingest of many batches through
every pipeline thread against the same rows ingested in one batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.runtime.store import Store, sources
from audience.runtime.store.dictionaries import DictState
from audience.runtime.store.encode import valid_rows
from audience.runtime.store.hashing import sort_order
from audience.runtime.store.ingest import month_pieces
from audience.schema import Schema

SCHEMA = Schema.from_toml(
    """
[events.viewed]
category = "string"
price = "float"
"""
)


@st.composite
def _hashes(draw: st.DrawFn) -> np.ndarray:
    """Hashes with repeats and with shared high bits (the cases the packed
    sort orders apart)."""
    top = draw(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=4))
    rows = draw(
        st.lists(st.tuples(st.integers(0, len(top) - 1), st.integers(0, 2**16)), max_size=300)
    )
    return np.array([(top[i] & ~0xFFFFF) | low for i, low in rows], dtype=np.uint64)


@given(_hashes())
@settings(max_examples=300, deadline=None)
def test_sort_order_is_the_stable_argsort(h: np.ndarray) -> None:
    assert sort_order(h).tolist() == np.argsort(h, kind="stable").tolist()


def test_sort_order_of_a_big_batch_is_the_stable_argsort() -> None:
    rng = np.random.default_rng(7)
    h = rng.integers(0, 2**63, 300_000, dtype=np.int64).view(np.uint64)
    h[::1000] = h[5]  # repeats
    h[1::997] = (h[7] & ~np.uint64(0xFFFFF)) | np.uint64(3)  # shared high bits
    assert (sort_order(h) == np.argsort(h, kind="stable")).all()


@given(
    st.lists(st.integers(-(2**41), 2**42), min_size=1, max_size=200),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_month_pieces_are_the_rows_of_each_month(values: list[int], in_order: bool) -> None:
    ts = np.array(sorted(values) if in_order else values, dtype=np.int64)
    enc = pa.table({"__ts": pa.array(ts), "row": pa.array(np.arange(len(ts)))})
    months = ts.astype("datetime64[ms]").astype("datetime64[M]")
    want = [(str(m), enc.filter(pa.array(months == m))) for m in np.unique(months)]
    got = month_pieces(enc, ts)
    assert [k for k, _ in got] == [k for k, _ in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert a.equals(b)


@given(st.lists(st.one_of(st.none(), st.integers(0, 5)), max_size=80), st.integers(0, 20))
@settings(max_examples=200, deadline=None)
def test_valid_rows_is_the_validity_of_each_row(values: list[int | None], start: int) -> None:
    strings = pa.array([None if v is None else f"v{v}" for v in values], pa.string())
    for arr in (pa.array(values, pa.int64()), strings, strings.dictionary_encode()):
        part = arr.slice(min(start, len(arr)))
        assert valid_rows(part).tolist() == part.is_valid().to_numpy(zero_copy_only=False).tolist()


@given(st.lists(st.one_of(st.none(), st.integers(0, 30)), min_size=1, max_size=100))
@settings(max_examples=200, deadline=None)
def test_a_dictionary_array_gets_the_codes_of_its_plain_strings(values: list[int | None]) -> None:
    plain = pa.array([None if v is None else f"s{v}" for v in values], pa.string())
    # the dictionary in an order of its own, with entries no row uses
    words = pa.array([f"s{v}" for v in range(30, -1, -1)], pa.string())
    index = pa.array([None if v is None else 30 - v for v in values], pa.int32())
    encoded = pa.DictionaryArray.from_arrays(index, words)
    valid = valid_rows(plain)
    a, b = DictState({}), DictState({})
    assert a.encode_any("k", encoded, valid).tolist() == b.encode_any("k", plain, valid).tolist()
    assert a.get("k").equals(b.get("k"))


def _events(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    contacts = rng.integers(0, n // 3 + 1, n)
    ids = rng.integers(0, n, n)  # repeats: duplicates inside and across batches
    # time-ordered over three months, with a stretch out of order
    ts = np.sort(rng.integers(1_780_000_000_000, 1_780_000_000_000 + 80 * 86_400_000, n))
    ts[n // 2 : n // 2 + 50] = ts[n // 2 : n // 2 + 50][::-1]
    price = rng.random(n)
    return pa.table(
        {
            "id": pa.array([f"e{i}" for i in ids]),
            "contact_id": pa.array([f"c{c}" for c in contacts]),
            "type": pa.array(["viewed"] * n),
            "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
            "category": pa.array([None if p < 0.3 else f"k{int(p * 7)}" for p in price]),
            "price": pa.array(price, mask=price > 0.8),
        }
    )


def test_many_batches_through_the_pipeline_make_the_store_of_one_batch(
    tmp_path: Path, monkeypatch: object
) -> None:
    table = _events(6_000, 1)
    path = tmp_path / "events.parquet"
    pq.write_table(table, path, row_group_size=1_500)
    one = Store.init(tmp_path / "one", SCHEMA)
    report_one = one.ingest_events(table)
    many = Store.init(tmp_path / "many", SCHEMA)
    assert isinstance(monkeypatch, __import__("pytest").MonkeyPatch)
    monkeypatch.setattr(sources, "CHUNK_ROWS", 400)  # 15 batches, a few per row group
    report_many = many.ingest_events(path)
    assert (report_many.accepted, report_many.duplicates) == (
        report_one.accepted,
        report_one.duplicates,
    )
    a, b = one.snapshot(), many.snapshot()
    assert a.n_events == b.n_events == report_one.accepted
    assert np.array_equal(a.first_event_ts, b.first_event_ts)
    pa_, pb_ = a.partitions, b.partitions
    assert [p.min_ts for p in pa_] == [p.min_ts for p in pb_]
    for x, y in zip(pa_, pb_, strict=True):
        assert np.array_equal(x.ts, y.ts)
        assert np.array_equal(x.contact, y.contact)
        assert np.array_equal(x.type, y.type)
        for name in ("category", "price"):
            cx, cy = x.columns[name], y.columns[name]
            assert np.array_equal(cx.values, cy.values)
            assert np.array_equal(cx.valid, cy.valid)
