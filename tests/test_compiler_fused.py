"""The fused scan path: lane kernels, type selections, linear distinct counts
and the sort-free sequence merge, each checked against the plain kernels
(or numpy) they replace, or a plain-Python reference, on random data."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from audience.compiler import plan as p
from audience.compiler.physical import Reduction
from audience.dsl import ast as a
from audience.engine.context import EvalContext
from audience.engine.fused import run_scans
from audience.engine.kernels import filters, lanes, postings, reduce, sequence
from audience.engine.strings import LutCache
from audience.engine.typeindex import type_rows
from audience.schema import Schema
from tests.compiler_snapshot import DAY_MS, build_snapshot, ms
from tests.reference.scans import reference_scan

SCHEMA = Schema.load("audience/examples/maison.toml")
NOW = ms("2026-11-01T00:00:00Z")
I32 = np.int32
I64 = np.int64


def _outputs(threads: int, n_agg: int, n_cnt: int, n_ts: int, n: int) -> tuple[Any, Any, Any]:
    counts = np.zeros((threads, n_agg + n_cnt, n), dtype=I64)
    accs = np.zeros((threads, n_agg, n))
    tss = np.empty((threads, n_ts, n), dtype=I64)
    return counts, accs, tss


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_scan_lanes_every_kind_matches_numpy(threads: int) -> None:
    rng = np.random.default_rng(7)
    rows, n = 5000, 40
    contact = rng.integers(0, n, rows).astype(I32)
    ts = np.sort(rng.integers(0, 10**6, rows)).astype(I64)
    vals = rng.normal(size=rows)
    mask = rng.random(rows) < 0.4
    kinds = [lanes.SUM, lanes.MIN, lanes.MAX, lanes.COUNT, lanes.COUNT, lanes.NEWEST, lanes.OLDEST]
    kinds += [lanes.TOTAL, lanes.TOTAL]  # accs slots after the counted ones: no count
    slots = [0, 1, 2, 3, 4, 0, 1, 3, 4]
    masked = [True, False, True, True, False, True, False, True, False]
    ranges = [(100, 4000), (0, rows), (2500, 2600), (10, 4990), (3000, 3000), (0, 2000), (7, 4321)]
    ranges += [(50, 4500), (0, rows)]
    counts, _, tss = _outputs(threads, 3, 2, 2, n)
    accs = np.zeros((threads, 5, n))
    tss[:, 0] = reduce.INT64_MIN
    tss[:, 1] = reduce.INT64_MAX
    lanes.scan_lanes(
        contact,
        ts,
        ranges,
        np.array(kinds, dtype=I64),
        np.array(slots, dtype=I64),
        np.array(masked),
        np.zeros(9, dtype=I64),
        mask,
        np.zeros(9, dtype=I64),
        vals,
        counts,
        accs,
        tss,
    )
    if threads > 1:
        lanes.merge_threads(
            [lanes.SUM, lanes.MIN, lanes.MAX, lanes.TOTAL, lanes.TOTAL],
            [lanes.NEWEST, lanes.OLDEST],
            counts,
            accs,
            tss,
        )
    for k, kd in enumerate(kinds):
        a, b = ranges[k]
        keep = np.zeros(rows, dtype=bool)
        keep[a:b] = True
        if masked[k]:
            keep &= mask
        r = slots[k]
        for c in range(n):
            sel = keep & (contact == c)
            if kd == lanes.COUNT:
                assert counts[0, r, c] == sel.sum()
            elif kd in (lanes.SUM, lanes.MIN, lanes.MAX):
                assert counts[0, r, c] == sel.sum()
                if sel.any():
                    picked = vals[sel]
                    want = {lanes.SUM: picked.sum(), lanes.MIN: picked.min()}.get(kd, picked.max())
                    assert accs[0, r, c] == pytest.approx(want)
            elif kd == lanes.TOTAL:  # 0 over no rows; the counts untouched (checked above)
                assert accs[0, r, c] == pytest.approx(vals[sel].sum())
            elif kd == lanes.NEWEST:
                assert tss[0, r, c] == (ts[sel].max() if sel.any() else reduce.INT64_MIN)
            else:
                assert tss[0, r, c] == (ts[sel].min() if sel.any() else reduce.INT64_MAX)


def test_scan_lanes_checks_its_inputs() -> None:
    contact = np.array([0, 1, 5], dtype=I32)
    ts = np.array([1, 2, 3], dtype=I64)
    one = np.zeros(1, dtype=I64)
    counts, accs, tss = _outputs(1, 0, 1, 0, 2)
    args = (np.array([lanes.COUNT]), one, np.array([False]), one, np.zeros(0, bool), one)
    with pytest.raises(ValueError, match="contact index"):
        lanes.scan_lanes(contact, ts, [(0, 3)], *args, np.zeros(0), counts, accs, tss)
    assert counts.sum() == 2  # the valid rows were counted before the error
    with pytest.raises(ValueError, match="outside"):
        lanes.scan_lanes(contact, ts, [(0, 4)], *args, np.zeros(0), counts, accs, tss)
    masked = (np.array([lanes.COUNT]), one, np.array([True]), one, np.zeros(2, bool), one)
    with pytest.raises(ValueError, match="mask"):
        lanes.scan_lanes(contact, ts, [(0, 3)], *masked, np.zeros(0), counts, accs, tss)
    agg = (np.array([lanes.SUM]), one, np.array([False]), one, np.zeros(0, bool), one)
    with pytest.raises(ValueError, match="slot"):
        lanes.scan_lanes(contact, ts, [(0, 2)], *agg, np.zeros(3), counts, accs, tss)


def test_select_rows_and_pairs() -> None:
    types = np.array([0, 1, 2, 1, -1, 1], dtype=I32)
    lut = np.array([False, True, False])
    assert filters.select_rows(types, 0, 6, lut).tolist() == [1, 3, 5]
    assert filters.select_rows(types, 2, 5, lut).tolist() == [3]
    mask = np.array([True, False, True])  # rows 2..4
    assert filters.select_rows(types, 2, 5, None, mask).tolist() == [2, 4]
    contact = np.array([9, 8, 7, 6], dtype=I32)
    codes = np.array([10, 11, 12, 13, 14], dtype=I32)  # rows 1..5
    c, v = filters.select_pairs(contact, None, 1, 4, np.array([True, False, True]), 1, codes, 1)
    assert c.tolist() == [8, 6] and v.tolist() == [10, 12]
    rows = np.array([1, 2, 4, 5], dtype=I32)
    c, v = filters.select_pairs(contact, rows, 0, 4, None, 0, codes, 1)
    assert c.tolist() == [9, 8, 7, 6] and v.tolist() == [10, 11, 13, 14]
    with pytest.raises(ValueError, match="codes"):
        filters.select_pairs(contact, rows, 0, 4, None, 0, codes, 2)
    # into arrays given, from a position: the pairs of two calls end to end
    buf = (np.full(7, -1, dtype=I32), np.full(7, -1, dtype=I32))
    c, _ = filters.select_pairs(
        contact, None, 1, 4, np.array([True, False, True]), 1, codes, 1, buf
    )
    c2, _ = filters.select_pairs(contact, rows, 0, 4, None, 0, codes, 1, out=buf, at=len(c))
    assert buf[0].tolist() == [8, 6, 9, 8, 7, 6, -1] and buf[1][:6].tolist() == [
        10,
        12,
        10,
        11,
        13,
        14,
    ]
    assert c2.tolist() == [9, 8, 7, 6]
    with pytest.raises(ValueError, match="no room"):
        filters.select_pairs(contact, rows, 0, 4, None, 0, codes, 1, out=buf, at=4)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shift", [0, 3, 10])
def test_distinct_codes_matches_sorting(threads: int, shift: int) -> None:
    rng = np.random.default_rng(3)
    n = 50
    contact = rng.integers(0, n, 4000).astype(I32)
    contact[:7] = n - 1  # the last bucket holds the last contact
    code = rng.integers(0, 30, 4000).astype(I32)
    want = reduce.distinct_counts(contact, code.astype(I64), n)
    assert reduce.distinct_codes(contact, code, n).tolist() == want.tolist()
    kernel = reduce._distinct_codes_par if threads > 1 else reduce._distinct_codes
    for cbits in (0, reduce.dc_cbits(30, shift)):  # grouped, then bitsets
        out = np.zeros(n, dtype=I64)
        kernel(contact, code, 30, threads, shift, cbits, out)  # shift 0: a bucket per contact
        assert out.tolist() == want.tolist()
    assert reduce.distinct_codes(contact[:0], code[:0], n).tolist() == [0] * n
    with pytest.raises(ValueError):
        reduce.distinct_codes(contact, -code - 1, n)


@pytest.mark.parametrize("n_codes", [1, 63, 64, 65, 5_000, 200_000])
def test_distinct_codes_bitsets_and_grouping_agree_at_any_code_count(n_codes: int) -> None:
    rng = np.random.default_rng(n_codes)
    n = 3_000
    contact = rng.integers(0, n, 20_000).astype(I32)
    code = rng.integers(0, n_codes, 20_000).astype(I32)
    code[:3] = n_codes - 1  # the highest code, in the last bitset word
    contact[:3] = n - 1
    code[3:40] = code[3]  # repeats of one pair
    contact[3:40] = contact[3]
    want = reduce.distinct_counts(contact, code.astype(I64), n).tolist()
    cbits = reduce.dc_cbits(n_codes, reduce.DC_SHIFT)
    assert (cbits > 0) == (n_codes <= 5_000)  # 200k codes: a bitset too big for the cache
    assert reduce.distinct_codes(contact, code, n).tolist() == want
    for kernel, threads in ((reduce._distinct_codes, 1), (reduce._distinct_codes_par, 2)):
        out = np.zeros(n, dtype=I64)
        kernel(contact, code, n_codes, threads, reduce.DC_SHIFT, cbits, out)
        assert out.tolist() == want


@pytest.mark.parametrize("then_not", [False, True])
def test_sequence_stream_matches_the_sorted_merge(then_not: bool) -> None:
    rng = np.random.default_rng(11)
    n = 12
    for _ in range(40):
        n1, n2 = rng.integers(0, 30, 2)
        t1 = np.sort(rng.integers(0, 60, n1)).astype(I64)  # small range: many ties
        t2 = np.sort(rng.integers(0, 60, n2)).astype(I64)
        c1 = rng.integers(0, n, n1).astype(I32)
        c2 = rng.integers(0, n, n2).astype(I32)
        deadline = t1 + rng.integers(0, 20, n1)
        got = sequence.sequence_stream(c1, t1, deadline, c2, t2, then_not, n)
        o1 = sequence.sort_by_contact_ts(c1, t1)
        o2 = sequence.sort_by_contact_ts(c2, t2)
        want = sequence.sequence_match(c1[o1], t1[o1], deadline[o1], c2[o2], t2[o2], then_not, n)
        assert got.tolist() == want.tolist()


def test_sequence_stream_needs_ts_order() -> None:
    c = np.array([0, 0], dtype=I32)
    t = np.array([5, 4], dtype=I64)
    assert not sequence.ascending(t) and sequence.ascending(t[::-1].copy())
    with pytest.raises(ValueError, match="sorted"):
        sequence.sequence_stream(c, t, t, c, np.sort(t), False, 1)


def _events() -> list[dict[str, Any]]:
    rng = np.random.default_rng(5)
    types = list(SCHEMA.events)
    out: list[dict[str, Any]] = []
    for i in range(600):
        t = str(rng.choice(types))
        rec: dict[str, Any] = {
            "contact_id": f"c{rng.integers(0, 15)}",
            "type": t,
            "ts": NOW - int(rng.integers(0, 70 * DAY_MS)),
        }
        if t in ("viewed_product", "added_to_cart"):
            rec["category"] = str(rng.choice(["shoes", "bags", "hats"]))
            rec["product_id"] = f"p{rng.integers(0, 9)}"
        if t == "purchased" and rng.random() < 0.8:
            rec["amount"] = float(rng.integers(1, 50))
        if t == "email_clicked" and i % 3:
            rec["campaign"] = f"k{i % 4}"
        out.append(rec)
    return out


def _window(days: int | None) -> p.WindowRef | None:
    if days is None:
        return None
    return p.WindowRef(a.Window("last", a.Duration(days, "day")), "UTC")


SHOES = p.PLeaf(p.FieldRef("event", "category", "string"), p.StrTest("=", ("shoes",)))
AMOUNT = p.FieldRef("event", "amount", "float")
PRODUCT = p.FieldRef("event", "product_id", "string")
CAMPAIGN = p.FieldRef("event", "campaign", "string")
TYPE = p.FieldRef("event", "type", "event_type")


def test_fused_scans_equal_the_reference_scans() -> None:
    # weekly partitions over 10 weeks: windows of 3 to 60 days cut them, and
    # two scans of one type with different windows share a pass (a lane whose
    # window misses a partition must not take the other lane's rows)
    events = _events()
    snap = build_snapshot(SCHEMA, events)
    assert len(snap.partitions) >= 9
    purchased, viewed = ("purchased",), ("viewed_product",)
    both = ("added_to_cart", "viewed_product")
    scans: list[tuple[p.RowFilter, tuple[Reduction, ...]]] = [
        (p.RowFilter(purchased, None, _window(14)), (("count",), ("ts", "last"))),
        (
            p.RowFilter(purchased, None, _window(60)),
            tuple(("agg", f, AMOUNT) for f in ("sum", "min", "max", "avg")),
        ),
        (p.RowFilter(viewed, SHOES, _window(30)), (("count",), ("agg", "count_distinct", PRODUCT))),
        (p.RowFilter(both, SHOES, _window(3)), (("count",), ("ts", "first"))),
        (p.RowFilter(None, None, _window(7)), (("count",), ("agg", "count_distinct", TYPE))),
        (p.RowFilter(None, None, None), (("ts", "last"), ("ts", "first"), ("count",))),
        (p.RowFilter(("email_clicked",), None, None), (("agg", "count_distinct", CAMPAIGN),)),
        (p.RowFilter(("form_compiled",), None, _window(1)), (("count",),)),
    ]
    ctx = EvalContext(snap, NOW, LutCache())
    got = run_scans(ctx, scans)
    assert ctx.stats["partitions_read"] + ctx.stats["partitions_skipped"] == len(snap.partitions)
    for (flt, reds), out in zip(scans, got, strict=True):
        want = reference_scan(events, snap.contact_ids, flt, reds, NOW)
        assert set(out) == set(want)
        for red in reds:
            for key, arr in want[red].items():
                assert np.allclose(out[red][key], arr), (flt, red, key)


def test_type_rows_is_a_partition_of_the_selected_rows() -> None:
    events = [
        {"contact_id": "a", "type": "viewed_product", "ts": NOW - 5, "category": "shoes"},
        {"contact_id": "b", "type": "purchased", "ts": NOW - 4, "amount": 3.0},
        {"contact_id": "a", "type": "viewed_product", "ts": NOW - 3},
        {"contact_id": "b", "type": "purchased", "ts": NOW - 2},
    ]
    profiles = [{"contact_id": "a", "tags": ["x", "y"]}]
    snap = build_snapshot(SCHEMA, events, profiles)
    (part,) = snap.partitions
    lut = np.zeros(len(snap.event_types), dtype=bool)
    lut[snap.event_types.code("purchased")] = True
    sel = type_rows(part, lut)
    assert type_rows(part, lut) is sel  # kept
    assert sel.rows.tolist() == [1, 3]
    sub = sel.partition
    assert sub.ts.tolist() == [NOW - 4, NOW - 2] and len(sub) == 2
    amount = sub.columns["amount"]
    assert amount.values[0] == 3.0 and amount.valid is not None
    assert amount.valid.tolist() == [True, False]
    assert sub.columns["amount"] is amount
    assert sel.span(NOW - 3, NOW) == (1, 2)
    with pytest.raises(KeyError):
        sub.columns["no_such_column"]


def test_gathered_list_columns_keep_their_elements() -> None:
    from audience.engine.typeindex import _gather
    from audience.snapshot import Column

    col = Column(
        "list",
        np.array([5, 6, 7, 8, 9], dtype=I32),
        np.array([True, False, True, True]),
        np.array([0, 2, 2, 3, 5], dtype=I64),
    )
    got = _gather(col, np.array([3, 0, 1], dtype=I32))
    assert got.offsets is not None and got.valid is not None
    assert got.offsets.tolist() == [0, 2, 4, 4]
    assert got.values.tolist() == [8, 9, 5, 6]
    assert got.valid.tolist() == [True, True, False]


def test_lanes_fold_counts_across_partitions_in_any_thread_split() -> None:
    # the same pass with forced thread splits agrees with one thread
    rng = np.random.default_rng(2)
    contact = rng.integers(0, 9, 300).astype(I32)
    ts = np.arange(300, dtype=I64)
    vals = rng.normal(size=300)
    outs = []
    for threads in (1, 2, 4):
        counts, accs, tss = _outputs(threads, 1, 1, 1, 9)
        tss[:] = reduce.INT64_MIN
        for lo, hi in itertools.pairwise((0, 100, 250, 300)):
            lanes.scan_lanes(
                contact,
                ts,
                [(lo, hi)] * 3,
                np.array([lanes.MIN, lanes.COUNT, lanes.NEWEST], dtype=I64),
                np.array([0, 1, 0], dtype=I64),
                np.zeros(3, dtype=bool),
                np.zeros(3, dtype=I64),
                np.zeros(0, dtype=bool),
                np.zeros(3, dtype=I64),
                vals,
                counts,
                accs,
                tss,
            )
        lanes.merge_threads([lanes.MIN], [lanes.NEWEST], counts, accs, tss)
        outs.append((counts[0].tolist(), accs[0].tolist(), tss[0].tolist()))
    assert outs[0] == outs[1] == outs[2]


@pytest.mark.skipif(not hasattr(lanes._scan_lanes, "signatures"), reason="NUMBA_DISABLE_JIT")
def test_fused_kernels_compile_nothing_on_the_query_path() -> None:
    kernels: list[Any] = [
        lanes._scan_lanes,
        lanes._scan_lanes_par,
        filters._select_rows,
        filters._select_pairs,
        reduce._distinct_codes,
        reduce._distinct_codes_par,
        sequence._sequence_stream,
        sequence._ascending,
        postings._group_rows,
    ]
    before = [list(k.signatures) for k in kernels]
    snap = build_snapshot(SCHEMA, _events())
    items = p.FieldRef("event", "items", "int")
    scans: list[tuple[p.RowFilter, tuple[Reduction, ...]]] = [
        (p.RowFilter(("purchased",), None, _window(30)), (("agg", "sum", AMOUNT), ("ts", "last"))),
        (p.RowFilter(("viewed_product",), SHOES, None), (("agg", "count_distinct", PRODUCT),)),
        (p.RowFilter(("purchased",), None, None), (("agg", "max", items), ("count",))),  # count8
        (p.RowFilter(("viewed_product",), SHOES, _window(9)), (("count",),)),  # an exists lane
    ]
    run_scans(EvalContext(snap, NOW, LutCache()), scans, bounds={3: 1, 2: 9})
    threads = _outputs(2, 0, 1, 0, 3)
    one = np.zeros(1, dtype=I64)
    contact = np.array([0, 1, 2], dtype=I32)
    ts = np.arange(3, dtype=I64)
    args = (np.array([lanes.COUNT]), one, np.array([False]), one, np.zeros(0, bool), one)
    lanes.scan_lanes(contact, ts, [(0, 3)], *args, np.zeros(0), *threads)
    c1 = np.array([0], dtype=I32)
    sequence.sequence_stream(c1, ts[:1], ts[:1] + 5, c1, ts[1:2], True, 1)
    assert [list(k.signatures) for k in kernels] == before


def test_a_finalizer_run_inside_the_cache_lock_does_not_deadlock() -> None:
    # garbage collection may drop a partition (running its finalizer, which
    # takes the lock) while the same thread holds the lock
    import weakref

    from audience.engine import typeindex

    snap = build_snapshot(SCHEMA, _events())
    part = snap.partitions[0]
    with typeindex._lock:
        typeindex._drop(id(part), weakref.ref(part))
        typeindex._drop_histogram(id(part), weakref.ref(part))
