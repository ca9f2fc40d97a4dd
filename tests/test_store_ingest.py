"""Ingest from files: formats, rejects, duplicates, profiles, dictionaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from audience.runtime.store import Store, StoreError
from tests.helpers.store_data import (
    EVENT_COLUMNS,
    EVENTS,
    PROFILES,
    dump,
    events_table,
    flat,
    schema,
    write_csv,
    write_jsonl,
    write_parquet,
)


def new_store(tmp_path: Path, name: str = "s") -> Store:
    return Store.init(tmp_path / name, schema())


def test_jsonl_csv_parquet_and_arrow_give_the_same_snapshot(tmp_path: Path) -> None:
    sources: list[Any] = [
        write_jsonl(tmp_path / "e.jsonl", EVENTS),
        write_csv(tmp_path / "e.csv", EVENTS, EVENT_COLUMNS),
        write_parquet(tmp_path / "e.parquet", events_table()),
        EVENTS,  # an iterable of dicts
    ]
    dumps = []
    for i, src in enumerate(sources):
        store = new_store(tmp_path, f"s{i}")
        report = store.ingest_events(src)
        assert (report.accepted, report.rejected, report.duplicates) == (6, 0, 0), src
        store.checkpoint()  # small ingests are logged; folded, partitions compare one to one
        dumps.append(dump(store.snapshot()))
    mem = Store.from_arrow(events_table(), None, schema())
    dumps.append(dump(mem.snapshot()))
    for d in dumps[1:]:
        assert d == dumps[0]


def test_from_arrow_equals_disk_ingest_with_profiles(tmp_path: Path) -> None:
    disk = new_store(tmp_path)
    disk.ingest_profiles(write_jsonl(tmp_path / "p.jsonl", PROFILES))
    disk.ingest_events(write_parquet(tmp_path / "e.parquet", events_table()))
    disk.checkpoint()
    from tests.helpers.store_data import profiles_table

    mem = Store.from_arrow(events_table(), profiles_table(), schema())
    assert dump(disk.snapshot()) == dump(mem.snapshot())
    assert dump(Store.open(tmp_path / "s").snapshot()) == dump(mem.snapshot())


GOOD: dict[str, Any] = {
    "id": "g",
    "contact_id": "c1",
    "type": "purchased",
    "ts": "2026-10-01T00:00:00Z",
}
MALFORMED: list[tuple[dict[str, Any], str | None, str]] = [
    (
        {**GOOD, "type": "purchase"},
        "type",
        "unknown event type \"purchase\"; did you mean 'purchased'?",
    ),
    ({**GOOD, "properties": {"amount": "abc"}}, "amount", 'amount: expected float, got "abc"'),
    ({**GOOD, "properties": {"items": 2.5}}, "items", "items: expected int, got 2.5"),
    ({k: v for k, v in GOOD.items() if k != "contact_id"}, "contact_id", "missing contact_id"),
    ({k: v for k, v in GOOD.items() if k != "type"}, "type", "missing type"),
    ({k: v for k, v in GOOD.items() if k != "ts"}, "ts", "missing ts"),
    ({**GOOD, "ts": "yesterday"}, "ts", 'ts: cannot parse "yesterday" as a timestamp'),
    ({**GOOD, "ts": "2026-10-01T00:00:00"}, "ts", "ts: cannot parse"),  # no offset
    ({**GOOD, "context": "MOON"}, "context", 'unknown context "MOON"'),
    ({**GOOD, "properties": {"colour": "red"}}, "colour", "unknown property 'colour'"),
    (
        {**GOOD, "properties": {"price": 3.0}},
        "price",
        "property 'price' is not declared for event type 'purchased'",
    ),
]


def _malformed_jsonl(tmp_path: Path) -> Path:
    lines = [json.dumps(GOOD | {"id": "first"})]
    for rec, _, _ in MALFORMED:
        lines.append(json.dumps(rec))
    lines.append("{not json")
    lines.append("")  # blank lines are skipped, not rejected
    lines.append("[1, 2]")
    lines.append(json.dumps(GOOD | {"id": "last"}))
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_every_malformed_kind_rejected_with_reason_and_line(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    src = _malformed_jsonl(tmp_path)
    report = store.ingest_events(src)
    assert report.accepted == 2 and report.rejected == len(MALFORMED) + 2
    got = {r.line: r for r in report.rejects}
    for k, (_, fld, reason) in enumerate(MALFORMED):
        r = got[k + 2]
        assert r.field == fld, r
        assert reason in r.reason, r
        assert r.where == f"line {k + 2}" and r.source == str(src)
    n = len(MALFORMED)
    assert got[n + 2].reason.startswith("not valid JSON") and got[n + 2].raw == "{not json"
    assert got[n + 4].reason == "a record must be a JSON object"
    assert store.snapshot().n_events == 2
    kept = store.rejected()
    assert [(r.line, r.reason) for r in kept] == [(r.line, r.reason) for r in report.rejects]
    assert json.loads(kept[0].raw)["type"] == "purchase"
    assert str(kept[0]).startswith(f"{src}: line 2: unknown event type")


def test_malformed_csv_rows_and_parquet_rows(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    recs: list[dict[str, Any]] = [
        GOOD,
        {**GOOD, "ts": "later"},
        {**GOOD, "properties": {"items": "x"}},
        GOOD,
    ]
    csv_path = write_csv(tmp_path / "e.csv", recs, ["contact_id", "type", "ts", "items"])
    with open(csv_path, "a", encoding="utf-8") as f:
        f.write("c1,purchased\n")  # too few cells
    report = store.ingest_events(csv_path)
    assert report.accepted == 2
    assert [(r.line, r.field) for r in report.rejects] == [(2, "ts"), (3, "items"), (5, None)]
    assert report.rejects[0].where == "row 2" and report.rejects[0].raw.startswith(
        "c1,purchased,later"
    )
    assert "wrong number of cells" in report.rejects[2].reason

    rows = [flat(r) for r in recs]
    import pyarrow as pa

    table = pa.table(
        {
            "contact_id": [r["contact_id"] for r in rows],
            "type": [r["type"] for r in rows],
            "ts": [r["ts"] for r in rows],
            "items": [str(r.get("items", "")) or None for r in rows],
        }
    )
    report = new_store(tmp_path, "p").ingest_events(write_parquet(tmp_path / "e.parquet", table))
    assert [(r.line, r.where, r.field) for r in report.rejects] == [
        (1, "row index 1", "ts"),
        (2, "row index 2", "items"),
    ]


def test_duplicate_ids_within_and_across_batches(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    batch = [
        GOOD | {"id": "a"},
        GOOD | {"id": "b"},
        GOOD | {"id": "a", "ts": 1},
        GOOD | {"id": None},
    ]
    r1 = store.ingest_events(batch)
    assert (r1.accepted, r1.duplicates) == (3, 1)
    r2 = store.ingest_events([GOOD | {"id": "b"}, GOOD | {"id": "c"}, GOOD | {"id": None}])
    assert (r2.accepted, r2.duplicates) == (2, 1)
    # an id that is a prefix, or differs by case, is another event
    r3 = store.ingest_events([GOOD | {"id": "A"}, GOOD | {"id": "a "}])
    assert (r3.accepted, r3.duplicates) == (2, 0)
    again = Store.open(tmp_path / "s").ingest_events(write_jsonl(tmp_path / "x.jsonl", batch))
    assert (again.accepted, again.duplicates) == (1, 3)  # only the id-less event is new
    assert store.snapshot().n_events == 8
    # the first occurrence is the one stored
    ts = sorted(int(t) for p in store.snapshot().partitions for t in p.ts)
    assert 1 not in ts


def test_profiles_upserted_field_by_field(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.ingest_profiles(PROFILES)
    store.ingest_events([GOOD | {"contact_id": "c5"}])
    r = store.ingest_profiles(
        [
            {"contact_id": "c1", "city": "Turin"},
            {"contact_id": "c9", "tags": ["x", "y"], "points": 3},
            {"contact_id": "c9", "points": 4},
            {"contact_id": "c5", "email": "e@x.org"},
            {"contact_id": "c1", "bogus": 1},
            {"contact_id": "c1", "points": "many"},
        ]
    )
    assert (r.accepted, r.rejected) == (4, 2)
    assert [(x.line, x.field) for x in r.rejects] == [(5, "bogus"), (6, "points")]
    snap = store.snapshot()
    ids = list(snap.contact_ids)

    def get(name: str, cid: str) -> Any:
        col = snap.profile[name]
        i = ids.index(cid)
        if col.valid is not None and not col.valid[i]:
            return None
        if col.kind == "code":
            return snap.dictionaries[f"profile.{name}"].values[col.values[i]]
        if col.kind == "list":
            assert col.offsets is not None
            codes = col.values[col.offsets[i] : col.offsets[i + 1]]
            return [snap.dictionaries[f"profile.{name}"].values[c] for c in codes]
        return col.values[i].item()

    assert (get("city", "c1"), get("email", "c1"), get("tags", "c1")) == (
        "Turin",
        "a@example.com",
        ["vip"],
    )
    assert get("points", "c1") == 10
    assert (get("city", "c9"), get("tags", "c9"), get("points", "c9"), get("vip", "c9")) == (
        "Rome",
        ["x", "y"],
        4,
        True,
    )
    assert get("email", "c5") == "e@x.org" and get("city", "c5") is None
    assert snap.has_profile[ids.index("c5")]
    assert snap.has_profile[ids.index("c1")] and snap.has_profile[ids.index("c9")]


def test_dictionaries_append_only_across_ingests(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.ingest_events([GOOD | {"id": "1", "properties": {"category": "shoes"}}])
    first = store.snapshot()
    codes = dict(first.dictionaries["category"].index)
    store.ingest_events(
        [
            GOOD | {"id": "2", "contact_id": "c0", "properties": {"category": "bags"}},
            GOOD | {"id": "3", "properties": {"category": "shoes"}},
        ]
    )
    second = Store.open(tmp_path / "s").snapshot()
    assert list(second.dictionaries["category"].values) == ["shoes", "bags"]
    assert {k: second.dictionaries["category"].code(k) for k in codes} == codes
    assert list(second.contact_ids) == ["c1", "c0"]
    assert list(first.dictionaries["category"].values) == ["shoes"]  # old snapshot untouched
    # every event's code decodes to what was sent
    cats = []
    for p in second.partitions:
        c = p.columns["category"]
        cats += [second.dictionaries["category"].values[v] for v in c.values]
    assert sorted(cats) == ["bags", "shoes", "shoes"]


def test_unreadable_sources(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    with pytest.raises(StoreError, match="no such file"):
        store.ingest_events(tmp_path / "missing.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(StoreError, match="unknown file kind"):
        store.ingest_events(tmp_path / "x.txt")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="cannot read as Parquet"):
        store.ingest_events(tmp_path / "bad.parquet")
    assert store.snapshot().version == 1


def test_merge_lists_adds_to_the_stored_list(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    store.ingest_profiles([{"contact_id": "c1", "tags": ["vip", "new"]}, {"contact_id": "c2"}])
    report = store.ingest_profiles(
        [
            {"contact_id": "c1", "tags": ["new", "shoes"]},
            {"contact_id": "c2", "tags": ["bags"]},
            {"contact_id": "c3", "tags": ["a", "a", "b"]},
            {"contact_id": "c1", "tags": ["hats"]},  # every row of a contact counts
        ],
        merge_lists=["tags"],
    )
    assert report.accepted == 4

    def of(cid: str) -> list[str]:
        snap = store.snapshot()
        tags = snap.profile["tags"]
        assert tags.offsets is not None
        values = snap.dictionaries["profile.tags"].values
        i = list(snap.contact_ids).index(cid)
        return [values[c] for c in tags.values[tags.offsets[i] : tags.offsets[i + 1]]]

    assert of("c1") == ["vip", "new", "shoes", "hats"]
    assert (of("c2"), of("c3")) == (["bags"], ["a", "b"])
    store.ingest_profiles([{"contact_id": "c1", "tags": ["x"]}])  # without: replaced
    assert of("c1") == ["x"]
    with pytest.raises(StoreError, match="'email' is not a list profile property"):
        store.ingest_profiles([], merge_lists=["email"])
