"""The fast paths of a scan: rows from a column index (``postings``), lanes
over given rows, exists flags, the cached type choice and universe, each
checked against the plain path it replaces or a plain reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.compiler import plan as p
from audience.compiler.physical import Reduction
from audience.dsl import ast as a
from audience.engine.context import EvalContext, universe_of
from audience.engine.fused import run_scans
from audience.engine.kernels import lanes
from audience.engine.kernels.postings import group_rows
from audience.engine.postings import Postings, accepted_codes, postings
from audience.engine.strings import LutCache
from audience.engine.typeindex import dense, type_rows, typed_source
from audience.schema import Schema
from audience.snapshot import Dictionary, Snapshot
from tests.compiler_snapshot import DAY_MS, build_snapshot, ms
from tests.reference.scans import reference_scan

NO_EVENT = np.iinfo(np.int64).max  # a contact's first event time when it has none

SCHEMA = Schema.load("audience/examples/maison.toml")
NOW = ms("2026-11-01T00:00:00Z")
I32, I64 = np.int32, np.int64
CATEGORY = p.FieldRef("event", "category", "string")
AMOUNT = p.FieldRef("event", "amount", "float")
ITEMS = p.FieldRef("event", "items", "int")
PRODUCT = p.FieldRef("event", "product_id", "string")


def test_group_rows_is_a_stable_counting_sort() -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(-2, 12, 2000).astype(I32)  # -2, -1 and 10, 11 are left out
    valid = rng.random(2000) < 0.8
    start, rows = group_rows(codes, valid, 10)
    assert len(start) == 11 and start[0] == 0 and start[-1] == len(rows)
    for c in range(10):
        want = np.flatnonzero((codes == c) & valid)
        assert rows[start[c] : start[c + 1]].tolist() == want.tolist()
    start, rows = group_rows(np.zeros(0, dtype=I32), None, 0)
    assert start.tolist() == [0] and len(rows) == 0


@pytest.mark.parametrize("codes", [[3], [0, 7], [2, 5, 9], [42], []])
def test_postings_select_equals_a_filter(codes: list[int]) -> None:
    rng = np.random.default_rng(2)
    values = rng.integers(0, 10, 500).astype(I32)
    contact = rng.integers(0, 30, 500).astype(I32)
    start, rows = group_rows(values, None, 10)
    index = Postings(start, rows, contact[rows])
    for lo, hi in [(0, 500), (17, 230), (499, 500), (250, 250)]:
        got_rows, got_contact = index.select(np.array(codes, dtype=np.int64), lo, hi)
        want = [i for i in range(lo, hi) if values[i] in codes]
        assert got_rows.tolist() == want
        assert got_contact.tolist() == contact[want].tolist()


def _lane_outputs(threads: int, n: int) -> tuple[Any, ...]:
    return (
        np.zeros((threads, 2, n), dtype=I64),  # counts: agg slot 0, count slot 1
        np.zeros((threads, 1, n), dtype=np.float64),
        np.zeros((threads, 0, n), dtype=I64),
        np.zeros((threads, 1, n), dtype=I64),
        np.zeros((threads, 2, n), dtype=np.uint8),
    )


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_lanes_over_given_rows_and_exists_flags(threads: int) -> None:
    rng = np.random.default_rng(4)
    rows_n, n = 4000, 50
    contact = rng.integers(0, n, rows_n).astype(I32)
    ts = np.arange(rows_n, dtype=I64)
    vals = rng.normal(size=rows_n)
    valid = rng.random(rows_n) < 0.7
    positions = np.sort(rng.choice(rows_n, 600, replace=False)).astype(I32)
    # lanes: sum over the positions with a validity mask, count over the
    # positions, exists over the positions, exists over a plain row range
    kinds = [lanes.SUM, lanes.COUNT, lanes.EXISTS, lanes.EXISTS]
    ranges = [(0, 600), (100, 500), (0, 600), (1000, 1300)]
    counts, accs, tss, iaccs, flags = _lane_outputs(threads, n)
    lanes.scan_lanes(
        contact,
        ts,
        ranges,
        np.array(kinds, dtype=I64),
        np.array([0, 1, 0, 1], dtype=I64),
        np.array([True, False, False, False]),
        np.zeros(4, dtype=I64),
        valid,
        np.zeros(4, dtype=I64),
        vals,
        counts,
        accs,
        tss,
        None,
        iaccs,
        np.array([True, True, True, False]),
        positions,
        flags,
        None if threads == 2 else contact[positions],  # None: gathered by the wrapper
    )
    if threads > 1:
        lanes.merge_threads([lanes.SUM], [], counts, accs, tss, iaccs, flags)
    summed = positions[valid[positions]]
    assert counts[0, 0].tolist() == np.bincount(contact[summed], minlength=n).tolist()
    want_sum = np.bincount(contact[summed], weights=vals[summed], minlength=n)
    assert np.allclose(accs[0, 0], want_sum)
    counted = positions[100:500]
    assert counts[0, 1].tolist() == np.bincount(contact[counted], minlength=n).tolist()
    assert flags[0, 0].tolist() == (np.bincount(contact[positions], minlength=n) > 0).tolist()
    assert flags[0, 1].tolist() == (np.bincount(contact[1000:1300], minlength=n) > 0).tolist()


def test_lanes_check_given_rows() -> None:
    contact = np.zeros(4, dtype=I32)
    ts = np.arange(4, dtype=I64)
    counts, accs, tss, iaccs, flags = _lane_outputs(1, 1)

    def run(span: tuple[int, int], pos: list[int], pos_contact: list[int] | None = None) -> None:
        lanes.scan_lanes(
            contact,
            ts,
            [span],
            np.array([lanes.COUNT], dtype=I64),
            np.ones(1, dtype=I64),
            np.zeros(1, dtype=np.bool_),
            np.zeros(1, dtype=I64),
            np.zeros(0, dtype=np.bool_),
            np.zeros(1, dtype=I64),
            np.zeros(0),
            counts,
            accs,
            tss,
            None,
            iaccs,
            np.ones(1, dtype=np.bool_),
            np.array(pos, dtype=I32),
            flags,
            None if pos_contact is None else np.array(pos_contact, dtype=I32),
        )

    with pytest.raises(ValueError, match="outside the 4 rows"):
        run((0, 2), [1, 4])
    with pytest.raises(ValueError, match="outside the 2 rows"):
        run((0, 3), [1, 2])
    with pytest.raises(ValueError, match="pos_contact"):
        run((0, 2), [1, 2], [0])
    with pytest.raises(ValueError, match="contact index outside"):
        run((0, 2), [1, 2], [0, 5])
    counts[:] = 0  # the rows of the call that raised were folded: outputs are undefined
    run((0, 2), [1, 3])
    assert counts[0, 1, 0] == 2


def _events() -> list[dict[str, Any]]:
    rng = np.random.default_rng(9)
    out: list[dict[str, Any]] = []
    # mostly views: the views are dense in some partitions, so their category
    # test goes through the type mask there and through a selection elsewhere
    for i in range(900):
        t = "viewed_product" if rng.random() < (0.9 if i < 450 else 0.4) else "purchased"
        rec: dict[str, Any] = {
            "contact_id": f"c{rng.integers(0, 300)}",  # few rows each: flags stay sparse
            "type": t,
            "ts": NOW - (900 - i) * DAY_MS // 15 - int(rng.integers(0, 3)),
        }
        if rng.random() < 0.85:
            rec["category"] = str(rng.choice(["shoes", "bags", "hats", "belts"]))
        rec["product_id"] = f"p{rng.integers(0, 6)}"
        if t == "purchased":
            rec["amount"] = float(rng.integers(1, 50))
            rec["items"] = int(rng.integers(2**53, 2**53 + 9))
        out.append(rec)
    return out


def _window(days: int) -> p.WindowRef:
    return p.WindowRef(a.Window("last", a.Duration(days, "day")), "UTC")


def _category(op: str, *values: str) -> p.PLeaf:
    return p.PLeaf(CATEGORY, p.StrTest(op, values))


@pytest.mark.parametrize(
    "pred",
    [
        _category("=", "shoes"),
        _category("in", "bags", "hats"),
        _category("!=", "shoes"),  # four values: indexed too, missing values never pass
        _category("starts_with", "b"),
        _category("=", "nowhere"),
    ],
)
def test_indexed_scans_equal_the_reference_scans(pred: p.PLeaf) -> None:
    events = _events()
    snap = build_snapshot(SCHEMA, events)
    assert len(snap.partitions) >= 8
    ctx = EvalContext(snap, NOW, LutCache())
    assert accepted_codes(ctx, pred) is not None
    views, both = ("viewed_product",), ("viewed_product", "purchased")
    aggs = tuple(("agg", f, fld) for f in ("sum", "min", "max") for fld in (AMOUNT, ITEMS))
    scans: list[tuple[p.RowFilter, tuple[Reduction, ...]]] = [
        (p.RowFilter(views, pred, _window(20)), (("count",), ("ts", "last"))),
        (p.RowFilter(views, pred, _window(45)), (("count",),)),
        (p.RowFilter(views, pred, _window(50)), (("count",), ("ts", "first"))),
        (p.RowFilter(None, pred, None), (("count",), ("agg", "count_distinct", PRODUCT))),
        (p.RowFilter(both, pred, _window(30)), aggs),
        (p.RowFilter(("purchased",), pred, None), (("count",),)),
    ]
    got = run_scans(ctx, scans, bounds={1: 1, 4: 1})
    for k, ((flt, reds), out) in enumerate(zip(scans, got, strict=True)):
        want = reference_scan(events, snap.contact_ids, flt, reds, NOW)
        for red in reds:
            for key, arr in want[red].items():
                if k in (1, 4) and red == ("count",):
                    assert out[red][key].dtype == np.bool_
                    assert out[red][key].tolist() == (arr >= 1).tolist()
                else:
                    assert out[red][key].dtype == arr.dtype, (k, red, key)
                    assert np.allclose(out[red][key], arr), (k, red, key)
    part = snap.partitions[0]
    assert postings(part, "category") is postings(part, "category")  # built once
    assert postings(part, "nothing") is None


def test_accepted_codes_leaves_out_wide_and_other_tests() -> None:
    snap = build_snapshot(SCHEMA, _events())
    ctx = EvalContext(snap, NOW, LutCache())
    assert accepted_codes(ctx, None) is None
    assert accepted_codes(ctx, p.PAnd((_category("=", "shoes"),))) is None
    amount = p.PLeaf(AMOUNT, p.NumTest(((">", 3),), "and"))
    assert accepted_codes(ctx, amount) is None
    field, codes = accepted_codes(ctx, _category("in", "hats", "bags")) or ("", None)
    assert field == "category" and codes is not None and len(codes) == 2


def test_typed_source_is_the_dense_choice_kept() -> None:
    snap = build_snapshot(SCHEMA, _events())
    et = snap.event_types
    for part in snap.partitions:
        for t in ("viewed_product", "purchased"):
            lut = np.zeros(len(et), dtype=np.bool_)
            lut[et.code(t)] = True
            got = typed_source(part, lut, lut.tobytes())
            if dense(part, lut):
                assert got is None
            else:
                assert got is type_rows(part, lut).partition
                assert typed_source(part, lut, lut.tobytes()) is got


def test_universe_is_kept_from_the_newest_first_event() -> None:
    events = [
        {"contact_id": "a", "type": "purchased", "ts": "2026-10-01T00:00:00Z"},
        {"contact_id": "b", "type": "purchased", "ts": "2026-10-05T00:00:00Z"},
    ]
    snap = build_snapshot(SCHEMA, events, [{"contact_id": "p"}])
    for now in ["2026-09-01T00:00:00Z", "2026-10-03T00:00:00Z", "2026-10-05T00:00:00Z"]:
        got, full = universe_of(snap, ms(now))
        assert got.tolist() == snap.universe(ms(now)).tolist()
        assert full == bool(got.all())
        assert not got.flags.writeable
    later, full = universe_of(snap, ms("2026-12-01T00:00:00Z"))
    assert later is universe_of(snap, ms("2027-01-01T00:00:00Z"))[0] and full


@settings(max_examples=80, deadline=None)
@given(
    firsts=st.lists(st.one_of(st.integers(0, 50), st.just(NO_EVENT)), max_size=40),
    profiles=st.lists(st.booleans(), max_size=40),
    now=st.integers(-5, 60),
)
def test_universe_is_the_snapshots_at_any_time(
    firsts: list[int], profiles: list[bool], now: int
) -> None:
    # every contact with an event, some without (profile only), or none at all
    n = len(firsts)
    has_profile = np.array((profiles + [False] * n)[:n], dtype=bool)
    snap = Snapshot(
        version=1,
        schema=SCHEMA,
        contact_ids=[str(i) for i in range(n)],
        event_types=Dictionary([]),
        dictionaries={},
        has_profile=has_profile,
        first_event_ts=np.array(firsts, dtype=np.int64),
        profile={},
    )
    for t in (now, 10**6):  # before the newest first event, and long after it
        got, full = universe_of(snap, t)
        assert got.tolist() == snap.universe(t).tolist() and full == bool(got.all())
