"""Store.from_arrow and the Snapshot encoding (in memory)."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

from audience.runtime.store import Store, StoreError
from audience.schema import CONTEXTS, TRACKING_EVENTS, Schema
from audience.snapshot import dictionary_key
from tests.helpers.store_data import decoded_events, events_table, ms, profiles_table, schema


def test_from_arrow_encodes_as_the_contract_says() -> None:
    store = Store.from_arrow(events_table(), profiles_table(), schema())
    snap = store.snapshot()
    assert store.path is None and store.node == "main"
    # the schema's own types, then the email tracking ones every schema has
    assert list(snap.event_types.values) == [
        "viewed_product",
        "purchased",
        "form_compiled",
        *TRACKING_EVENTS,
    ]
    assert list(snap.dictionaries["context"].values) == list(CONTEXTS)
    # profiles first (c1, c9), then contacts first seen in events, in input order
    assert list(snap.contact_ids) == ["c1", "c9", "c2", "c3", "c4"]
    assert snap.n_events == 6
    for p in snap.partitions:
        assert p.ts.dtype == np.int64 and p.contact.dtype == np.int32 and p.type.dtype == np.int32
        assert np.all(np.diff(p.ts) >= 0)
        assert p.min_ts == p.ts[0] and p.max_ts == p.ts[-1]
        assert set(p.columns) == {"context", *snap.schema.event_property_names()} - {
            "id",
            "contact_id",
            "type",
            "ts",
        }
        kinds = {k: c.kind for k, c in p.columns.items()}
        assert kinds["category"] == "code" and kinds["price"] == "float"
        assert kinds["items"] == "int" and kinds["ok"] == "bool" and kinds["day"] == "date"
        assert kinds["at"] == "datetime" and kinds["flags"] == "list"
        assert p.columns["ok"].values.dtype == np.bool_
        assert p.columns["day"].values.dtype == np.int32
    rows = decoded_events(snap)
    e3 = next(r for r in rows if r["type"] == "form_compiled" and r["contact_id"] == "c1")
    assert e3["ts"] == ms("2026-10-01T00:00:00.250+00:00")
    assert e3["flags"] == ["a", "b"] and e3["ok"] is True
    assert e3["day"] == (np.datetime64("2026-09-30") - np.datetime64("1970-01-01")).astype(int)
    assert e3["at"] == ms("2026-10-01T00:00:00+00:00")
    assert e3["context"] == "MOBILE" and "price" not in e3
    e2 = next(r for r in rows if r["type"] == "purchased" and r["contact_id"] == "c2")
    assert e2["ts"] == ms("2026-09-03T06:30:00+00:00") and e2["items"] == 2
    assert "context" not in e2
    # event properties share one dictionary per name across types
    assert set(snap.dictionaries["category"].values) == {"shoes", "bags"}


def test_partitions_are_calendar_months_and_skippable() -> None:
    snap = Store.from_arrow(events_table(), None, schema()).snapshot()
    spans = [(p.min_ts, p.max_ts, len(p)) for p in snap.partitions]
    assert spans == [
        (ms("2026-09-03T06:30:00+00:00"), ms("2026-09-03T06:30:00+00:00"), 1),
        (ms("2026-10-01T00:00:00.250+00:00"), ms("2026-10-20T10:00:00+00:00"), 4),
        (ms("2026-11-02T12:00:00+00:00"), ms("2026-11-02T12:00:00+00:00"), 1),
    ]


def test_first_event_ts_and_has_profile() -> None:
    store = Store.from_arrow(events_table(), profiles_table(), schema())
    snap = store.snapshot()
    ids = list(snap.contact_ids)
    first = dict(zip(ids, snap.first_event_ts.tolist(), strict=True))
    has = dict(zip(ids, snap.has_profile.tolist(), strict=True))
    assert has == {"c1": True, "c9": True, "c2": False, "c3": False, "c4": False}
    assert first["c1"] == ms("2026-10-01T00:00:00.250+00:00")
    assert first["c2"] == ms("2026-09-03T06:30:00+00:00")
    assert first["c9"] == np.iinfo(np.int64).max
    assert snap.universe(ms("2026-09-30T00:00:00+00:00")).tolist() == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_profile_columns_aligned_with_contacts() -> None:
    snap = Store.from_arrow(events_table(), profiles_table(), schema()).snapshot()
    city = snap.profile["city"]
    d = snap.dictionaries[dictionary_key("profile", "city")]
    assert len(city.values) == snap.n_contacts and city.valid is not None
    assert [d.values[v] if ok else None for v, ok in zip(city.values, city.valid, strict=True)] == [
        "Milan",
        "Rome",
        None,
        None,
        None,
    ]
    tags = snap.profile["tags"]
    assert tags.offsets is not None and len(tags.offsets) == snap.n_contacts + 1
    assert [int(x) for x in tags.values[tags.offsets[0] : tags.offsets[1]]] == [0]
    assert snap.profile["vip"].values.dtype == np.bool_
    assert snap.profile["vip"].valid is not None and snap.profile["vip"].valid.tolist() == [
        False,
        True,
        False,
        False,
        False,
    ]
    bd = snap.profile["birth_date"]
    assert bd.values[1] == (np.datetime64("1990-05-17") - np.datetime64("1970-01-01")).astype(int)
    assert snap.profile["signup_ts"].values[1] == ms("2026-01-01T00:00:00+00:00")


def test_from_arrow_rejects_invalid_rows_and_lists_them() -> None:
    t = events_table()
    bad = pa.table(
        {
            "contact_id": pa.array(["c1", None, "c2"]),
            "type": pa.array(["nope", "purchased", "purchased"]),
            "ts": pa.array([1, 2, None], pa.timestamp("ms", tz="UTC")),
        }
    )
    store = Store.from_arrow(
        pa.concat_tables([t, bad], promote_options="permissive"), None, schema()
    )
    assert store.snapshot().n_events == 6
    got = [(r.line, r.field) for r in store.rejected()]
    assert got == [(6, "type"), (7, "contact_id"), (8, "ts")]
    assert "unknown event type" in store.rejected()[0].reason
    assert store.rejected()[0].where == "row index 6"


def test_snapshot_cached_until_something_lands() -> None:
    store = Store.from_arrow(events_table(), None, schema())
    a = store.snapshot()
    assert store.snapshot() is a
    store.ingest_events([{"contact_id": "c7", "type": "purchased", "ts": 5}])
    b = store.snapshot()
    assert b is not a and b.version > a.version and b.n_events == a.n_events + 1
    assert a.n_contacts == b.n_contacts - 1  # the old snapshot did not change


def test_snapshot_thread_safe() -> None:
    store = Store.from_arrow(events_table(), None, schema())
    seen: list[int] = []

    def read() -> None:
        for _ in range(20):
            seen.append(store.snapshot().n_events)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert seen == [6] * 80


def test_naive_and_second_timestamps_are_utc() -> None:
    t = pa.table(
        {
            "contact_id": pa.array([1, 2]),
            "type": ["purchased", "purchased"],
            "ts": pa.array([1_700_000_000, 1_700_000_001], pa.timestamp("s")),
        }
    )
    snap = Store.from_arrow(t, None, schema()).snapshot()
    assert list(snap.contact_ids) == ["1", "2"]
    assert snap.partitions[0].ts.tolist() == [1_700_000_000_000, 1_700_000_001_000]


def test_conflicting_property_types_are_a_bad_schema() -> None:
    bad = Schema.from_toml('[events.a]\nx = "int"\n[events.b]\nx = "float"\n')
    with pytest.raises(
        StoreError, match=r"property 'x' is int in events\.a but float in events\.b"
    ):
        Store.from_arrow(None, None, bad)


def test_empty_store_snapshot() -> None:
    snap = Store.from_arrow(None, None, schema()).snapshot()
    assert snap.n_contacts == 0 and snap.n_events == 0
    assert len(snap.event_types) == 3 + len(TRACKING_EVENTS)
    assert snap.profile["city"].values.shape == (0,)
    assert set(snap.dictionaries) == {
        "context",
        "product_name",
        "category",
        "order_id",
        "form_name",
        "flags",
        "profile.email",
        "profile.city",
        "profile.tags",
        # the string properties of the email tracking events
        *{k for props in TRACKING_EVENTS.values() for k, t in props.items() if t == "string"},
    }
