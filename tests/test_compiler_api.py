"""The evaluator's public API: Audience, explain, as_of forms, partition
pruning, thread safety, and evaluation over a real Store snapshot."""

from __future__ import annotations

import dataclasses
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from audience.dsl import ast as a
from audience.engine.kernels import filters, lanes, reduce, sequence
from audience.runtime.evaluate import compile_condition, parse_as_of
from audience.schema import Schema
from audience.snapshot import Dictionary, Snapshot
from tests.compiler_ast import cmp, date, did, dur, ev, last, pf, profile, red_shoes
from tests.compiler_snapshot import DAY_MS, build_snapshot, ms

SCHEMA = Schema.load("audience/examples/maison.toml")
NOW = "2026-11-01T00:00:00Z"


def _weekly_events() -> list[dict[str, Any]]:
    """One purchase per contact per week for 10 weeks before NOW (partitions are weeks)."""
    out = []
    for week in range(10):
        ts = ms(NOW) - week * 7 * DAY_MS - 3_600_000
        for c in ("a", "b"):
            out.append({"contact_id": c, "type": "purchased", "ts": ts, "amount": 10.0})
    out.append(
        {
            "contact_id": "v",
            "type": "viewed_product",
            "ts": ms(NOW) - 3_600_000,
            "product_name": "Red Shoes",
        }
    )
    return out


def test_audience_api() -> None:
    snap = build_snapshot(SCHEMA, _weekly_events(), [{"contact_id": "p"}])
    hits = compile_condition(red_shoes(), SCHEMA).evaluate(snap, NOW)
    assert len(hits) == 1 and hits.ids() == ["v"]
    assert hits.mask.dtype == np.bool_ and len(hits.mask) == snap.n_contacts
    table = hits.to_arrow()
    assert table.column_names == ["contact_id"] and table.column(0).to_pylist() == ["v"]
    assert hits.explain is None


def test_explain_counts_rules_in_text_order_and_prunes_partitions() -> None:
    snap = build_snapshot(SCHEMA, _weekly_events(), [{"contact_id": "p"}])
    x = did("purchased", window=last(15, "day"))
    cond = a.And(
        (
            a.Rule("recent", x),
            a.Rule("vip", profile(a.IsSet(pf("email"), negated=True))),
            a.Rule("recent", x),
        )
    )
    hits = compile_condition(cond, SCHEMA).evaluate(snap, NOW, explain=True)
    assert hits.explain is not None
    exp = hits.explain
    assert exp["count"] == 2 and exp["universe"] == 4
    assert exp["rules"] == [
        {"label": "recent", "count": 2},
        {"label": "vip", "count": 4},
        {"label": "recent", "count": 2},
    ]
    assert [o["count"] for o in exp["operands"]] == [2, 4, 2]
    total = len(snap.partitions)
    # a 15-day window touches at most 3 weekly partitions; the rest are skipped
    assert exp["partitions"]["total"] == total
    assert 1 <= exp["partitions"]["read"] <= 3
    assert exp["partitions"]["read"] + exp["partitions"]["skipped"] == total
    assert "profile.email" in exp["columns"]
    assert all(s["ms"] >= 0 for s in exp["steps"])
    assert exp["plan"].startswith("logical:")


def test_explain_windowless_scan_reads_every_partition() -> None:
    snap = build_snapshot(SCHEMA, _weekly_events())
    where = cmp(ev("amount"), ">", 5)
    exp = (
        compile_condition(did("purchased", where), SCHEMA).evaluate(snap, NOW, explain=True).explain
    )
    assert exp is not None
    assert exp["partitions"]["skipped"] == 0
    assert exp["columns"] == ["amount"]


def test_types_the_store_never_saw_skip_every_partition() -> None:
    snap = build_snapshot(SCHEMA, _weekly_events())
    # a store's type dictionary holds only the types it has seen (codes kept)
    seen = tuple(snap.event_types.values[:3])
    snap = dataclasses.replace(snap, event_types=Dictionary.from_values(seen))
    exp = compile_condition(did("email_sent"), SCHEMA).evaluate(snap, NOW, explain=True).explain
    assert exp is not None and exp["partitions"]["read"] == 0 and exp["count"] == 0


def test_as_of_forms_agree() -> None:
    snap = build_snapshot(SCHEMA, _weekly_events())
    seg = compile_condition(did("purchased", window=last(1, "day")), SCHEMA)
    want = seg.evaluate(snap, NOW).ids()
    assert want == ["a", "b"]
    assert seg.evaluate(snap, ms(NOW)).ids() == want
    aware = dt.datetime(2026, 11, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert seg.evaluate(snap, aware).ids() == want
    assert seg.evaluate(snap, "2026-11-01T00:00:00").ids() == want  # naive: the segment's zone
    assert parse_as_of("2026-11-01T01:00:00", "Europe/Rome") == ms(NOW)
    assert seg.evaluate(snap, "2040-01-01T00:00:00Z").ids() == []
    assert seg.evaluate(snap).ids() == []  # now: these events are long past
    with pytest.raises(ValueError):
        seg.evaluate(snap, "yesterday")
    with pytest.raises(TypeError):
        seg.evaluate(snap, 1.5)  # type: ignore[arg-type]


def test_threads_evaluate_at_once_with_identical_results() -> None:
    rng = np.random.default_rng(7)
    base = ms(NOW) - 60 * DAY_MS
    names = ["Red Shoes", "Blue Shoes", "Bag"]
    events = []
    for _ in range(3000):
        c = f"c{rng.integers(0, 300)}"
        t = int(base + rng.integers(0, 61 * DAY_MS))
        if rng.random() < 0.7:
            events.append(
                {
                    "contact_id": c,
                    "type": "viewed_product",
                    "ts": t,
                    "product_name": names[rng.integers(0, 3)],
                }
            )
        else:
            events.append(
                {
                    "contact_id": c,
                    "type": "purchased",
                    "ts": t,
                    "amount": float(rng.integers(1, 100)),
                }
            )
    snap = build_snapshot(SCHEMA, events)
    cond = a.Or(
        (
            red_shoes(),
            a.Aggregate(
                "sum",
                ev("amount"),
                a.EventSel(("purchased",)),
                None,
                last(30, "day"),
                ">",
                a.NumberLit(150),
            ),
        )
    )
    seg = compile_condition(cond, SCHEMA)
    times = [ms(NOW) - k * DAY_MS for k in range(8)]
    expected = [seg.evaluate(snap, t).mask for t in times]
    assert any(e.any() for e in expected)
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda t: seg.evaluate(snap, t).mask, times * 4))
    for i, mask in enumerate(got):
        assert np.array_equal(mask, expected[i % len(times)])


def test_through_store_from_arrow_and_the_parser() -> None:
    from audience.dsl.parser import parse_condition
    from audience.runtime.store.store import Store

    def ts(s: str) -> dt.datetime:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))

    events = pa.table(
        {
            "id": ["e1", "e2", "e3", "e4"],
            "contact_id": ["a", "b", "b", "c"],
            "type": ["viewed_product", "viewed_product", "purchased", "viewed_product"],
            "ts": pa.array(
                [
                    ts("2026-10-25T10:00:00Z"),
                    ts("2026-10-25T10:00:00Z"),
                    ts("2026-10-26T10:00:00Z"),
                    ts("2026-11-05T10:00:00Z"),
                ],
                type=pa.timestamp("ms", tz="UTC"),
            ),
            "product_name": ["Red Shoes", "Red Shoes", None, "Red Shoes"],
            "amount": pa.array([None, None, 80.0, None], type=pa.float64()),
        }
    )
    profiles = pa.table({"contact_id": ["a", "z"], "city": ["Milan", None]})
    snap = Store.from_arrow(events, profiles, SCHEMA).snapshot()
    text = (
        'did viewed_product where product_name = "Red Shoes" in last 15 days '
        "and not did purchased in last 15 days"
    )
    seg = compile_condition(parse_condition(text), SCHEMA)
    assert seg.evaluate(snap, NOW).ids() == ["a"]
    later = compile_condition(
        parse_condition('did viewed_product where product_name = "Red Shoes"'), SCHEMA
    )
    assert sorted(later.evaluate(snap, "2026-11-06T00:00:00Z").ids()) == ["a", "b", "c"]
    nocity = compile_condition(parse_condition("city is not set"), SCHEMA)
    assert sorted(nocity.evaluate(snap, NOW).ids()) == ["b", "z"]


def test_in_segment_evaluates_the_saved_segment_at_the_same_now() -> None:
    events = [
        {"contact_id": "a", "type": "purchased", "ts": "2026-10-31T23:30:00Z"},  # Nov 1 in Rome
        {"contact_id": "b", "type": "purchased", "ts": "2026-10-31T22:30:00Z"},  # Oct 31 in Rome
    ]
    snap = build_snapshot(SCHEMA, events, [{"contact_id": "p", "city": "Milan"}])
    saved = {
        "Bought today": a.Segment(
            "Bought today",
            a.Rule("inner", did("purchased", window=a.Window("today"))),
            "Europe/Rome",
        )
    }
    cond = a.Or((a.Rule("outer", a.InSegment("Bought today")), profile(a.IsSet(pf("city")))))
    seg = compile_condition(cond, SCHEMA, segment_resolver=saved.get)
    hits = seg.evaluate(snap, "2026-11-01T08:00:00Z", explain=True)
    assert sorted(hits.ids()) == ["a", "p"]
    assert hits.explain is not None
    assert [r["label"] for r in hits.explain["rules"]] == ["outer"]  # not the saved segment's
    not_in = compile_condition(
        a.Not(a.InSegment("Bought today")), SCHEMA, segment_resolver=saved.get
    )
    assert sorted(not_in.evaluate(snap, "2026-11-01T08:00:00Z").ids()) == ["b", "p"]


def _frozen(snap: Snapshot) -> Snapshot:
    """The snapshot with every array read-only, as the store's memory maps are."""
    for arr in _arrays(snap):
        arr.setflags(write=False)
    return snap


def _arrays(snap: Snapshot) -> list[np.ndarray]:
    cols = [*snap.profile.values()] + [c for p in snap.partitions for c in p.columns.values()]
    out = [snap.has_profile, snap.first_event_ts]
    out += [a for p in snap.partitions for a in (p.ts, p.contact, p.type)]
    for c in cols:
        out += [x for x in (c.values, c.valid, c.offsets) if x is not None]
    return out


@pytest.mark.skipif(not hasattr(filters._lut_mask, "signatures"), reason="NUMBA_DISABLE_JIT")
def test_no_kernel_compiles_on_the_query_path() -> None:
    """Kernels have declared signatures only (read-only inputs, which writable
    arrays convert to): never-seen segments over read-only data compile nothing."""
    kernels: list[Any] = [
        filters._lut_mask,
        filters._compare_mask,
        filters._list_mask,
        filters._gather,
        lanes._scan_lanes,
        reduce._distinct_codes,
        reduce._distinct_counts,
        sequence._sequence,
    ]
    for k in kernels:  # loaded now (kernels load on first use): their declared signatures
        getattr(k, "load", lambda: None)()
    before = [list(k.signatures) for k in kernels]
    events = [
        {"contact_id": "a", "type": "added_to_cart", "ts": "2026-10-01T00:00:00Z", "quantity": 2},
        {"contact_id": "a", "type": "purchased", "ts": "2026-10-01T01:00:00Z", "amount": 5.0},
        {
            "contact_id": "b",
            "type": "viewed_product",
            "ts": "2026-10-02T00:00:00Z",
            "price": 3.5,
            "product_name": "Bag",
        },
    ]
    profiles = [
        {"contact_id": "a", "tags": ["vip"], "newsletter": True, "birth_date": "1990-01-01"}
    ]
    snap = _frozen(build_snapshot(SCHEMA, events, profiles))
    conds: list[a.Cond] = [
        did("viewed_product", cmp(ev("product_name"), "=", "Bag")),
        did("added_to_cart", cmp(ev("quantity"), ">", 1), a.Count("at_most", 3)),
        did("purchased", cmp(ev("profile.newsletter"), "=", True)),
        profile(a.TextMatch(pf("tags"), "contains", a.StringLit("vip"))),
        profile(a.TimeCompare(pf("birth_date"), "before", date("2000-01-01"))),
        a.Aggregate(
            "avg", ev("quantity"), a.EventSel(("added_to_cart",)), None, None, ">", a.NumberLit(1)
        ),
        a.Aggregate("min", ev("price"), a.EventSel(None), None, None, "<", a.NumberLit(9)),
        a.Aggregate("max", ev("quantity"), a.EventSel(None), None, None, ">", a.NumberLit(1)),
        a.Aggregate(
            "count_distinct", ev("product_name"), a.EventSel(None), None, None, ">", a.NumberLit(0)
        ),
        a.Aggregate(
            "count_distinct", ev("price"), a.EventSel(None), None, None, ">", a.NumberLit(0)
        ),
        a.LastFirst("last", a.EventSel(None), None, a.Recency("in_last", dur(90, "day"))),
        a.Sequence(
            a.EventSel(("added_to_cart",)),
            None,
            False,
            a.EventSel(("purchased",)),
            None,
            dur(2, "hour"),
        ),
    ]
    got = [sorted(compile_condition(c, SCHEMA).evaluate(snap, NOW).ids()) for c in conds]
    assert got == [
        ["b"],
        ["a", "b"],
        ["a"],
        ["a"],
        ["a"],
        ["a"],
        ["b"],
        ["a"],  # max(quantity) > 1: exact int lanes
        ["b"],
        ["b"],
        ["a", "b"],
        ["a"],
    ]
    assert [list(k.signatures) for k in kernels] == before
