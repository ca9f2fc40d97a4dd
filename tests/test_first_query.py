"""What a new process's first query reads lazily: a partition's columns
(viewed on first access) and its per-type row selections (from the type
mask), each the same as the eager way gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.dsl.parser import parse_condition
from audience.engine.kernels import filters
from audience.engine.typeindex import _build
from audience.runtime.evaluate import compile_condition
from audience.runtime.store import Store
from audience.runtime.store.encode import column_view, event_property_types, partition_view
from audience.snapshot import LazyPartition, LazyStrings, Partition
from tests.helpers.store_data import events_table, profiles_table, schema


@settings(max_examples=60, deadline=None)
@given(
    codes=st.lists(st.integers(-3, 12), max_size=300),
    lut=st.lists(st.booleans(), max_size=10),
)
def test_a_type_selection_is_the_rows_the_row_kernel_selects(
    codes: list[int], lut: list[bool]
) -> None:
    # codes outside the table (negative, or past its end) are never selected
    types = np.array(codes, dtype=np.int32)
    table = np.array(lut, dtype=bool)
    n = len(types)
    part = Partition(
        0, max(n - 1, 0), np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int32), types, {}
    )
    sel = _build(part, table)
    expected = filters.select_rows(types, 0, n, table)
    assert sel.rows.dtype == np.int32 and sel.rows.tolist() == expected.tolist()
    assert sel.partition.ts.tolist() == expected.tolist()
    assert sel.partition.type.tolist() == types[expected].tolist()


def test_a_partition_views_its_columns_on_first_access_and_as_eagerly() -> None:
    store = Store.from_arrow(events_table(), profiles_table(), schema())
    props = event_property_types(schema())
    fields = {"context": "string", **props}
    backend = store._backend
    files = [p.file for p in backend.read_manifest().partitions]
    assert len(files) == len(store.snapshot().partitions) > 1
    for name in files:
        table = backend.read_table(name)
        part = partition_view(table, props)
        assert list(part.columns) == list(fields) and len(part.columns) == len(fields)
        assert part.columns._done == {}  # type: ignore[attr-defined]  # nothing viewed yet
        for field, ftype in fields.items():
            got = part.columns[field]
            want = column_view(table, field, ftype, len(part))
            assert got.kind == want.kind and got.values.tolist() == want.values.tolist()
            assert _opt(got.valid) == _opt(want.valid) and _opt(got.offsets) == _opt(want.offsets)
            assert part.columns[field] is got  # kept
        assert part.columns.get("no such column") is None


def _opt(arr: np.ndarray | None) -> list[object] | None:
    return None if arr is None else arr.tolist()


def _months_store(path: Path) -> tuple[Store, list[dict[str, object]]]:
    """A disk store with a partition per month (January to June 2026)."""
    records: list[dict[str, object]] = [
        {
            "id": f"e{m}-{i}",
            "contact_id": f"c{i % 7}",
            "type": "purchased" if i % 3 else "viewed_product",
            "ts": f"2026-{m:02d}-{1 + i % 27:02d}T12:00:00Z",
            "properties": {"category": f"cat{i % 5}"},
        }
        for m in range(1, 7)
        for i in range(40)
    ]
    store = Store.init(path, schema())
    store.ingest_events(events_table(records))
    store.checkpoint()
    return Store.open(path), records


def test_a_new_snapshot_reads_the_partitions_of_its_windows_only(tmp_path: Path) -> None:
    store, records = _months_store(tmp_path / "s")
    snap = store.snapshot()
    parts = snap.partitions
    assert len(parts) == 6 and all(isinstance(p, LazyPartition) for p in parts)
    assert snap.n_events == len(records)  # from the manifest: nothing read
    assert all(p._part is None for p in parts)
    # the last 10 days of June: only June's partition is read
    hits = compile_condition(parse_condition("did purchased in last 10 days"), schema()).evaluate(
        snap, "2026-06-30T00:00:00Z"
    )
    read = [p.min_ts for p in parts if p._part is not None]
    assert len(read) == 1 and read[0] == max(p.min_ts for p in parts)
    want = {r["contact_id"] for r in records if r["type"] == "purchased" and r["ts"] > "2026-06-20"}
    assert set(hits.ids()) == want
    # the same rows, bounds and columns as the file's eager view
    for p in parts:
        eager = partition_view(store._backend.read_table(_file_of(store, p)), store._props)
        assert (p.min_ts, p.max_ts, len(p)) == (eager.min_ts, eager.max_ts, len(eager))
        assert p.ts.tolist() == eager.ts.tolist() and p.type.tolist() == eager.type.tolist()
        assert p.contact.tolist() == eager.contact.tolist()
        assert list(p.columns) == list(eager.columns)


def test_a_snapshots_partitions_stay_readable_once_their_files_are_deleted(
    tmp_path: Path,
) -> None:
    """A snapshot maps its files when taken: a compaction's ``collect`` may
    delete them later (a minute after no version names them), and a query
    of the old snapshot still reads them."""
    store, records = _months_store(tmp_path / "s")
    snap = store.snapshot()
    for f in (tmp_path / "s").glob("nodes/main/partitions/*.arrow"):
        f.unlink()
    assert sum(len(p.ts) for p in snap.partitions) == len(records)


def test_a_new_snapshot_reads_a_dictionary_when_a_query_needs_its_values(
    tmp_path: Path,
) -> None:
    store, records = _months_store(tmp_path / "s")
    snap = store.snapshot()
    categories = snap.dictionaries["category"]
    values = categories.values
    assert isinstance(values, LazyStrings) and values._arrow is None
    assert len(categories) == 5  # from the manifest: nothing read
    # the files are mapped: deleted now, they are still read
    for f in (tmp_path / "s").glob("nodes/main/dictionaries/*.arrow"):
        f.unlink()
    assert sorted(values) == [f"cat{i}" for i in range(5)]
    assert values.arrow is not None and values.arrow.to_pylist() == list(values)
    assert categories.code("cat3") == list(values).index("cat3")
    assert sorted(snap.contact_ids) == sorted({str(r["contact_id"]) for r in records})


def test_read_files_reads_every_partition_and_dictionary_now(tmp_path: Path) -> None:
    store, _ = _months_store(tmp_path / "s")
    snap = store.snapshot()
    snap.read_files()  # (a cluster's worker, when it opens a shard)
    for f in (tmp_path / "s").glob("nodes/main/*/*.arrow"):
        f.unlink()
    assert all(isinstance(p, LazyPartition) and p._part is not None for p in snap.partitions)
    lazy = [snap.event_types.values, snap.contact_ids, snap.dictionaries["category"].values]
    assert all(isinstance(v, LazyStrings) and v._arrow is not None for v in lazy)


def _file_of(store: Store, part: object) -> str:
    return next(name for name, p in store._partitions.items() if p is part)
