"""Compaction (audience.runtime.store.compact) and the small-ingest path: a
stream of single-event ingests leaves a bounded number of files, the same
events, codes and audiences as one big ingest, and nothing no version names
once the grace period is over."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.runtime.node import Node
from audience.runtime.store import Store, StoreError, layout, sources, wal
from audience.runtime.store.compact import FANOUT, merge_groups
from audience.runtime.store.dictionaries import CONTACTS, IDS
from audience.schema import Schema

SCHEMA = Schema.from_toml(
    """
[events.viewed]
category = "string"
url = "string"
"""
)
START = 1_780_000_000_000  # 2026-05-28
DAY = 86_400_000
SEGMENT = 'did viewed where category = "shoes" at least 2 times in last 90 days'
AS_OF = dt.datetime.fromtimestamp((START + 200 * DAY) / 1000, dt.UTC)


def _record(i: int) -> dict[str, Any]:
    # Two calendar months, some new contacts, new urls, and a few events out of order.
    ts = START + (i * 7 % 97) * DAY // 2
    return {
        "id": f"e{i}",
        "contact_id": f"c{i % 37}",
        "type": "viewed",
        "ts": ts,
        "category": ["shoes", "bags", "hats"][i % 3],
        "url": f"/p/{i % 53}",
    }


def _rows(store: Store) -> list[tuple[Any, ...]]:
    """Every stored event, decoded, in a canonical order."""
    snap = store.snapshot()
    cat = snap.dictionaries["category"].values
    url = snap.dictionaries["url"].values
    out = []
    for part in snap.partitions:
        assert (np.diff(part.ts) >= 0).all()  # a merged partition stays sorted
        for k in range(len(part)):
            out.append(
                (
                    snap.contact_ids[part.contact[k]],
                    int(part.ts[k]),
                    cat[part.columns["category"].values[k]],
                    url[part.columns["url"].values[k]],
                )
            )
    return sorted(out)


def test_groups() -> None:
    assert merge_groups([1, 1, 1], 100) == []
    assert merge_groups([1, 1, 1, 1], 100) == [(0, 4)]
    assert merge_groups([20, 1, 1, 1, 1], 100) == [(1, 5)]
    assert merge_groups([8, 2, 2, 2, 1, 1, 1], 100) == [(0, 7)]  # a merge, then another
    assert merge_groups([16, 1, 16, 1], 100) == [(0, 4)]  # sizes that alternate
    assert merge_groups([4, 4, 4, 4], 4) == []  # at the limit: left alone
    assert merge_groups([1, 1, 1, 100, 1, 1, 1], 100) == []  # nor merged across


def _bound(total: int) -> int:
    return FANOUT + total.bit_length()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=150))
def test_appending_and_compacting_keeps_few_contiguous_entries(sizes: list[int]) -> None:
    """Commits that each append one entry then merge: order and total kept,
    few entries left, and each row rewritten a logarithmic number of times."""
    entries: list[list[int]] = []  # each entry: the appended sizes it holds, in order
    rewritten = 0
    for size in sizes:
        entries.append([size])
        for a, b in reversed(merge_groups([sum(e) for e in entries], 1 << 30)):
            entries[a:b] = [[s for e in entries[a:b] for s in e]]
            rewritten += sum(entries[a])
        assert len(entries) <= _bound(sum(sum(e) for e in entries))
    assert [s for e in entries for s in e] == sizes
    assert rewritten <= sum(sizes) * 2 * _bound(sum(sizes))


def test_single_event_ingests_compact_and_match_one_big_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal, "MAX_ROWS", 0)  # each ingest writes its own files
    n = 300
    records = [_record(i) for i in range(n)]
    small = Store.init(tmp_path / "small", SCHEMA)
    for rec in records:
        assert small.ingest_events([rec]).accepted == 1
    big = Store.from_arrow(pa.Table.from_pylist(records), schema=SCHEMA)

    m = small._backend.read_manifest()
    months = {p.bucket for p in m.partitions}
    bound = _bound(n)
    assert len(m.partitions) <= len(months) * bound
    assert len(m.dictionaries[IDS]) <= bound and len(m.id_index) <= bound
    assert small.snapshot().n_events == n
    assert _rows(small) == _rows(big)
    # Codes are assigned in arrival order either way: the same dictionaries.
    assert list(small.snapshot().contact_ids) == list(big.snapshot().contact_ids)
    assert Node(small).compile(SEGMENT).evaluate(as_of=AS_OF).ids() == (
        Node(big).compile(SEGMENT).evaluate(as_of=AS_OF).ids()
    )
    # Duplicates are still found in compacted chunks and runs, after a reopen too.
    again = Store.open(tmp_path / "small")
    report = again.ingest_events([records[3], records[150], {**_record(n), "id": "new"}])
    assert (report.accepted, report.duplicates) == (1, 2)
    assert again.snapshot().n_events == n + 1
    assert _rows(Store.open(tmp_path / "small"))[:3] == _rows(again)[:3]


def test_files_no_version_names_are_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal, "MAX_ROWS", 0)
    st_ = Store.init(tmp_path / "s", SCHEMA)
    for i in range(40):
        st_.ingest_events([_record(i)])
    node = tmp_path / "s" / "nodes" / "main"

    def on_disk() -> set[str]:
        return {
            f"{kind}/{p.name}"
            for kind in layout.KINDS
            if (node / kind).is_dir()
            for p in (node / kind).iterdir()
        }

    named = st_._backend.read_manifest().files() & on_disk()
    assert named < on_disk()  # merged-away files wait for the grace period
    reader = Store.open(tmp_path / "s")
    before = reader.snapshot()
    monkeypatch.setattr(layout, "GRACE_S", 0.0)
    monkeypatch.setattr(layout, "COLLECT_EVERY_S", 0.0)
    st_.ingest_events([_record(40)])
    assert on_disk() == st_._backend.read_manifest().files() - {"wal/00000042.log"}
    # A snapshot taken before keeps its (memory-mapped) data.
    assert before.n_events == 40 and int(before.partitions[0].ts[0]) >= START
    assert reader.snapshot().n_events == 41


def test_a_failed_ingest_leaves_no_stale_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dictionaries' hash tables outlive an ingest; one that fails after
    encoding new values must not leave codes that never landed."""
    a = Store.init(tmp_path / "s", SCHEMA)
    # Enough contacts for their dictionary to be looked up by hash.
    a.ingest_events([{**_record(i), "contact_id": f"k{i}"} for i in range(5000)])
    monkeypatch.setattr(sources, "JSON_CHUNK", 1)  # the first record is encoded, then it fails
    monkeypatch.setattr(wal, "MAX_ROWS", 0)

    def failing() -> Any:
        # Two batches: the second extends the hash table with the first's value.
        yield {**_record(1), "id": "x1", "contact_id": "only-in-a"}
        yield {**_record(1), "id": "x1b", "contact_id": "also-only-in-a"}
        raise StoreError("the source broke")

    with pytest.raises(StoreError):
        a.ingest_events(failing())
    b = Store.open(tmp_path / "s")
    b.ingest_events([{**_record(2), "id": "x2", "contact_id": "only-in-b"}])
    a.ingest_events([{**_record(3), "id": "x3", "contact_id": "only-in-a"}])
    # A stale table would not know b's contact (it believed it covered that
    # code) and give it a second code.
    a.ingest_events([{**_record(4), "id": "x4", "contact_id": "only-in-b"}])
    ids = list(Store.open(tmp_path / "s").snapshot().contact_ids)
    assert ids[-2:] == ["only-in-b", "only-in-a"] and len(set(ids)) == len(ids)
    assert list(a.snapshot().contact_ids) == ids
    assert len(ids) == a._backend.read_manifest().dict_size(CONTACTS)
