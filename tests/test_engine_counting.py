"""Narrow counters (``engine.counting``): a count only compared with bounds
is kept in a flag or a saturating byte, and every test of it must still be
exact.  Checked against exact Python counts, at the edges of the caps, over
several calls (partitions) and 1-3 threads, and end to end through the
compiler."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.compiler import plan as p
from audience.dsl import ast as a
from audience.engine import counting
from audience.engine.counting import count_bounds
from audience.engine.kernels import lanes, masks
from audience.runtime.evaluate import compile_condition
from audience.schema import Schema
from tests.compiler_ast import did, ev, last, sel
from tests.compiler_snapshot import DAY_MS, build_snapshot, ms

SCHEMA = Schema.load("audience/examples/maison.toml")
NOW = ms("2026-11-01T00:00:00Z")
I32, I64 = np.int32, np.int64
BIG = 2**63 - 1
# thresholds at and around the caps (a flag's 1, a byte's 255) and beyond
EDGES = [0, 1, 2, 3, 254, 255, 256, 257, 300, 65535, 65536]


def _range(op: str, n: int, high: int | None) -> tuple[int, int]:
    return counting.count_range(p.CountCond(p.RowFilter(None, None, None), op, n, high))  # type: ignore[arg-type]


def _passes(count: int, op: str, n: int, high: int | None) -> bool:
    """The test as the language states it, on the exact count."""
    if op == "at_least":
        return count >= n
    if op == "at_most":
        return count <= n
    if op == "exactly":
        return count == n
    assert high is not None
    return n <= count <= high


def _count_with(
    kind: int,
    contact: np.ndarray,
    calls: list[tuple[int, int]],
    threads: int,
    n: int,
    how: str = "rows",
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Per-contact counts of ``kind`` over the rows ``[a, b)`` of every call
    (a partition each) that ``keep`` keeps (all: None), folded by ``threads``
    threads and merged.  ``how`` the lanes take the rows: ``rows`` (a range,
    and ``keep`` as a mask), ``positions`` (the kept rows, given), or
    ``masked_positions`` (every row given, ``keep`` as a mask)."""
    wide = kind == lanes.COUNT
    counts = np.zeros((threads, 1 if wide else 0, n), dtype=I64)
    flags = np.zeros((threads, 0 if wide else 1, n), dtype=np.uint8)
    accs = np.zeros((threads, 0, 0))
    tss = np.zeros((threads, 0, n), dtype=I64)
    iaccs = np.zeros((threads, 0, 0), dtype=I64)
    ts = np.zeros(len(contact), dtype=I64)
    one = np.zeros(1, dtype=I64)
    kept = np.ones(len(contact), dtype=bool) if keep is None else keep
    masked = np.array([keep is not None and how != "positions"])
    for a_, b in calls:
        span = (a_, b)
        positions = None
        if how == "positions":
            positions = (np.flatnonzero(kept[a_:b]) + a_).astype(I32)
        elif how == "masked_positions":
            positions = np.arange(a_, b, dtype=I32)
        if positions is not None:
            span = (0, len(positions))
        lanes.scan_lanes(
            contact, ts, [span], np.array([kind], dtype=I64), one, masked, one,
            kept, one, np.zeros(0), counts, accs, tss, iaccs=iaccs, flags=flags,
            has_pos=np.array([positions is not None]), positions=positions,
        )  # fmt: skip
    if threads > 1:
        kinds = [] if wide else [kind]
        lanes.merge_threads([], [], counts, accs, tss, iaccs, flags, kinds)
    return counts[0, 0] if wide else flags[0, 0]


def _as_result(kind: int, out: np.ndarray) -> np.ndarray:
    # what ``fused`` hands the tests: a flag is a bool array
    return out.view(np.bool_) if kind == lanes.EXISTS else out


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 5),
    threads=st.integers(1, 3),
    op=st.sampled_from(["at_least", "at_most", "exactly", "between"]),
    how=st.sampled_from(["rows", "positions", "masked_positions"]),
    masked=st.booleans(),
)
def test_a_narrow_counter_answers_its_tests_like_the_exact_count(
    data: st.DataObject, n: int, threads: int, op: str, how: str, masked: bool
) -> None:
    # few contacts and up to 700 rows: counts cross 255 and stop near it
    weights = data.draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    rows = data.draw(st.integers(0, 700))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    w = np.array(weights, dtype=float) + 1e-9
    contact = rng.choice(n, size=rows, p=w / w.sum()).astype(I32)
    cuts = sorted(data.draw(st.lists(st.integers(0, rows), max_size=4)))
    calls = list(zip([0, *cuts], [*cuts, rows], strict=True))
    keep = rng.random(rows) < 0.8 if masked else None
    exact = np.bincount(contact if keep is None else contact[keep], minlength=n)
    lo_n = data.draw(st.sampled_from(EDGES) | st.integers(-2, 400))
    high = lo_n + data.draw(st.sampled_from([0, 1, 2, 200])) if op == "between" else None
    lo, hi = _range(op, lo_n, high)
    bound = counting.range_bound(lo, hi)
    # the counter the test chooses, and every wider one, answer exactly
    chosen = counting.count_kind(bound)
    for kind in {chosen, lanes.COUNT8, lanes.COUNT} - ({lanes.COUNT8} if bound > 255 else set()):
        out = _count_with(kind, contact, calls, threads, n, how, keep)
        got = counting.count_mask(_as_result(kind, out), lo, hi)
        want = [_passes(int(c), op, lo_n, high) for c in exact]
        assert got.tolist() == want, (kind, exact.tolist())


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_byte_counts_saturate_across_calls_and_threads(threads: int) -> None:
    # contact 0: 1000 rows, 1: 255, 2: 254, 3: 256, 4: none, 5: one
    contact = np.repeat(np.arange(6, dtype=I32), [1000, 255, 254, 256, 0, 1])
    contact = np.random.default_rng(3).permutation(contact)
    calls = [(0, 100), (100, 100), (100, 900), (900, len(contact))]
    got = _count_with(lanes.COUNT8, contact, calls, threads, 7)
    assert got.tolist() == [255, 255, 254, 255, 0, 1, 0]


def test_the_saturating_merge_never_wraps() -> None:
    rng = np.random.default_rng(5)
    into = rng.integers(0, 256, 5000).astype(np.uint8)
    more = rng.integers(0, 256, 5000).astype(np.uint8)
    into[:3], more[:3] = [255, 200, 0], [255, 56, 255]
    want = np.minimum(into.astype(I64) + more, 255)
    flags = np.stack([into, more])[:, None, :].copy()
    no = np.zeros((2, 0, 0))
    counts = tss = np.zeros((2, 0, 5000), dtype=I64)
    lanes.merge_threads([], [], counts, no, tss, flags=flags, flag_kinds=[lanes.COUNT8])
    assert flags[0, 0].tolist() == want.tolist()
    with pytest.raises(ValueError, match="per flags slot"):
        lanes.merge_threads([], [], counts, no, tss, flags=flags, flag_kinds=[lanes.COUNT])


def test_the_width_follows_the_bound() -> None:
    assert counting.count_kind(None) == lanes.COUNT
    assert [counting.count_kind(b) for b in (0, 1, 2, 255, 256)] == [
        lanes.EXISTS, lanes.EXISTS, lanes.COUNT8, lanes.COUNT8, lanes.COUNT,
    ]  # fmt: skip
    bound = counting.range_bound
    assert bound(*_range("at_least", 255, None)) == 255  # min(count, 255) >= 255 is exact
    assert bound(*_range("at_most", 254, None)) == 255
    assert bound(*_range("at_most", 255, None)) == 256  # 256 must stay apart from 255
    assert bound(*_range("exactly", 0, None)) == 1
    assert bound(*_range("at_most", -1, None)) == 0
    assert bound(*_range("between", 2, 9)) == 10
    assert bound(*_range("at_least", 10**30, None)) == 10**30  # an int64 count (clamped)
    assert bound(*_range("at_most", 10**30, None)) == 0  # every count passes


def test_a_counter_too_narrow_for_a_test_is_refused() -> None:
    flags = np.array([0, 255], dtype=np.uint8)
    with pytest.raises(ValueError, match="capped at 255"):
        counting.count_mask(flags, 0, 255)
    with pytest.raises(ValueError, match="capped at 1"):
        counting.count_mask(np.array([True]), 2, BIG)
    exists = np.array([False, True])
    assert counting.count_mask(exists, 1, BIG) is exists  # ``did``: no pass
    assert counting.count_mask(exists, 0, 0).tolist() == [True, False]


def test_range_mask_over_bytes_clamps_its_bounds() -> None:
    vals = np.array([0, 1, 254, 255], dtype=np.uint8)
    assert masks.range_mask(vals, -5, 1).tolist() == [True, True, False, False]
    assert masks.range_mask(vals, 255, 10**20).tolist() == [False, False, False, True]
    assert masks.range_mask(vals, 256, 10**20).tolist() == [False] * 4
    assert masks.range_mask(vals, 3, 2).tolist() == [False] * 4


def _program(cond: a.Cond) -> Any:
    return compile_condition(cond, SCHEMA, timezone="UTC").program


def test_count_bounds_take_the_widest_test_of_each_scan() -> None:
    shoes = a.Compare(ev("category"), "=", a.StringLit("shoes"))
    view = did(sel("viewed_product"), shoes, None, last(15, "day"))
    bought = did(sel("purchased"), None, None, last(15, "day"))
    assert sorted(count_bounds(_program(a.And((view, a.Not(bought))))).values()) == [1, 1]
    three = did(sel("viewed_product"), shoes, a.Count("at_least", 3), last(15, "day"))
    assert list(count_bounds(_program(a.And((view, three)))).values()) == [3]  # one scan
    few = did(sel("viewed_product"), shoes, a.Count("between", 2, 300), last(15, "day"))
    assert list(count_bounds(_program(a.Or((three, few)))).values()) == [301]
    spend = a.Aggregate(
        "sum", ev("profile.loyalty_points"), sel("purchased"), None, None, ">", a.NumberLit(1)
    )
    assert list(count_bounds(_program(spend)).values()) == [None]  # the count read in full
    either = a.Or((spend, did(sel("purchased"), None, a.Count("at_least", 2), None)))
    assert list(count_bounds(_program(either)).values()) == [None]


def test_count_tests_at_the_caps_match_exact_counts_end_to_end() -> None:
    # per contact, its number of views: around each cap, spread over several
    # partitions (a partition per day), in random order
    per = {"z": 0, "a": 1, "b": 2, "c": 254, "d": 255, "e": 256, "f": 300, "g": 600}
    rng = np.random.default_rng(11)
    events: list[dict[str, Any]] = [{"contact_id": "z", "type": "purchased", "ts": NOW - DAY_MS}]
    for cid, k in per.items():
        for _ in range(k):
            t = NOW - int(rng.integers(1, 9 * DAY_MS))
            events.append({"contact_id": cid, "type": "viewed_product", "ts": t})
    snap = build_snapshot(SCHEMA, events, partition_ms=DAY_MS)
    assert len(snap.partitions) >= 8
    tests = [("at_least", n, None) for n in (0, 1, 2, 254, 255, 256, 257, 600, 601)]
    tests += [("at_most", n, None) for n in (0, 1, 254, 255, 256)]
    tests += [("exactly", n, None) for n in (0, 1, 255, 256, 300)]
    tests += [("between", 254, 256), ("between", 0, 0), ("between", 255, 70000)]
    for op, n, high in tests:
        cond = did(sel("viewed_product"), None, a.Count(op, n, high), None)  # type: ignore[arg-type]
        got = set(compile_condition(cond, SCHEMA, timezone="UTC").evaluate(snap, NOW).ids())
        want = {cid for cid, k in per.items() if _passes(k, op, n, high)}
        assert got == want, (op, n, high)


def test_the_widest_call_is_one_partitions_rows_of_one_group() -> None:
    # (what decides per-thread outputs: a pass of many small partitions has
    # no call big enough for threads, however many rows it reads in all)
    from audience.engine.fused import _widest_call
    from audience.engine.scan import row_range
    from audience.engine.scanplan import Scan

    views = [{"contact_id": f"c{i % 7}", "type": "viewed_product", "ts": NOW - i * 60_000}
             for i in range(300)]  # fmt: skip
    bought = [{"contact_id": "c1", "type": "purchased", "ts": NOW - i * 600_000} for i in range(30)]
    snap = build_snapshot(SCHEMA, views + bought, partition_ms=DAY_MS)
    lut = np.zeros(len(snap.event_types), dtype=np.bool_)
    lut[snap.event_types.code("purchased")] = True
    every = (p.RowFilter(None, None, None), (("count",), ("ts", "last")))
    rare = (p.RowFilter(("purchased",), None, None), (("count",),))
    scans = [
        Scan(every[0], every[1], 0, 2**62, None, False),
        Scan(rare[0], rare[1], 0, 2**62, lut, False, lut.tobytes()),
    ]
    parts = [(part, [row_range(part, 0, 2**62)] * 2) for part in snap.partitions]
    sizes = [len(part) for part in snap.partitions]
    assert _widest_call(scans, parts) == 2 * max(sizes)  # two lanes over every row
    code = snap.event_types.code("purchased")
    rows = [int((part.type == code).sum()) for part in snap.partitions]
    assert 0 < max(rows) < max(sizes) * 0.75  # a selection of the partition, not a mask
    one = [(part, ranges[:1]) for part, ranges in parts]
    assert _widest_call(scans[1:], one) == pytest.approx(max(rows))  # its rows only
