"""What a new process's first query reads lazily: a partition's columns
(viewed on first access) and its per-type row selections (from the type
mask), each the same as the eager way gives."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.engine.kernels import filters
from audience.engine.typeindex import _build
from audience.runtime.store import Store
from audience.runtime.store.encode import column_view, event_property_types, partition_view
from audience.snapshot import Partition
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
