"""int ``min``/``max`` stay exact beyond float64's 2**53, through every path:
the lane kernel (one thread and split threads, every int column type), the
compiled evaluator (event and profile fields) against the reference."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest

from audience.dsl import ast as a
from audience.engine.kernels import filters, lanes
from audience.engine.kernels.config import OP_CODES
from audience.runtime.evaluate import compile_condition
from audience.schema import Schema
from tests.compiler_ast import ev, sel
from tests.compiler_snapshot import build_snapshot
from tests.reference.evaluator import Event, evaluate

SCHEMA = Schema.load("audience/examples/maison.toml")
NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
I64MAX = int(np.iinfo(np.int64).max)
I64MIN = int(np.iinfo(np.int64).min)
BIG = 2**53  # float64 cannot tell BIG from BIG + 1
# values float64 rounds together: any float fold gets some of these wrong
VALUES = [BIG - 1, BIG, BIG + 1, BIG + 2, -BIG - 1, I64MAX, I64MAX - 1, I64MIN, I64MIN + 1, 0]


def _exact_outputs(threads: int, slots: int, n: int) -> tuple[np.ndarray, ...]:
    counts = np.zeros((threads, slots, n), dtype=np.int64)
    accs = np.zeros((threads, slots, n), dtype=np.float64)
    tss = np.zeros((threads, 0, n), dtype=np.int64)
    iaccs = np.zeros((threads, slots, n), dtype=np.int64)
    return counts, accs, tss, iaccs


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_int_lanes_are_exact_in_any_thread_split(threads: int) -> None:
    rng = np.random.default_rng(3)
    rows, n = 3000, 25
    contact = rng.integers(0, n, rows).astype(np.int32)
    ts = np.arange(rows, dtype=np.int64)
    ivals = rng.choice(np.array(VALUES, dtype=np.int64), rows)
    mask = rng.random(rows) < 0.5
    kinds = [lanes.IMIN, lanes.IMAX, lanes.IMAX]
    ranges = [(0, rows), (100, 2900), (0, rows)]
    masked = [False, True, True]
    counts, accs, tss, iaccs = _exact_outputs(threads, 3, n)
    lanes.scan_lanes(
        contact,
        ts,
        ranges,
        np.array(kinds, dtype=np.int64),
        np.arange(3, dtype=np.int64),
        np.array(masked),
        np.zeros(3, dtype=np.int64),
        mask,
        np.zeros(3, dtype=np.int64),
        np.zeros(0),
        counts,
        accs,
        tss,
        ivals,
        iaccs,
    )
    if threads > 1:
        lanes.merge_threads(kinds, [], counts, accs, tss, iaccs)
    for k, kd in enumerate(kinds):
        lo, hi = ranges[k]
        for c in range(n):
            picked = [
                int(ivals[i])
                for i in range(lo, hi)
                if contact[i] == c and (mask[i] or not masked[k])
            ]
            assert counts[0, k, c] == len(picked)
            if picked:
                assert int(iaccs[0, k, c]) == (min if kd == lanes.IMIN else max)(picked)


def test_int_lanes_check_their_values_cover_the_rows() -> None:
    contact = np.zeros(4, dtype=np.int32)
    counts, accs, tss, iaccs = _exact_outputs(1, 1, 1)
    args = (
        np.array([lanes.IMAX], dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        np.zeros(1, dtype=np.bool_),
        np.zeros(1, dtype=np.int64),
        np.zeros(0, dtype=np.bool_),
        np.zeros(1, dtype=np.int64),
        np.zeros(0),
    )
    ts = np.arange(4, dtype=np.int64)
    with pytest.raises(ValueError, match="values do not cover"):
        lanes.scan_lanes(contact, ts, [(0, 4)], *args, counts, accs, tss, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="shape of accs"):
        lanes.scan_lanes(
            contact, ts, [(0, 4)], *args, counts, accs, tss, np.zeros(4, np.int64), iaccs[:, :0]
        )
    lanes.scan_lanes(contact, ts, [(0, 4)], *args, counts, accs, tss, ts + BIG, iaccs)
    assert (counts[0, 0, 0], iaccs[0, 0, 0]) == (4, BIG + 3)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
@pytest.mark.parametrize("kind", ["min", "max"])
def test_int_lanes_fold_every_int_column_type_exactly(kind: str, dtype: Any) -> None:
    rng = np.random.default_rng(5)
    n, rows = 7, 400
    contact = rng.integers(0, n, rows).astype(np.int32)
    pool = (
        VALUES if dtype == np.int64 else [-(2**31), 2**31 - 1, 5] if dtype == np.int32 else [0, 1]
    )
    values = rng.choice(np.array(pool, dtype=np.int64), rows).astype(dtype)
    valid = rng.random(rows) < 0.7
    counts, accs, tss, iaccs = _exact_outputs(1, 1, n)
    # as the fused pass reads a column: its values as int64, its validity as the mask
    lanes.scan_lanes(
        contact,
        np.arange(rows, dtype=np.int64),
        [(0, rows)],
        np.array([lanes.IMIN if kind == "min" else lanes.IMAX], dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        np.ones(1, dtype=np.bool_),
        np.zeros(1, dtype=np.int64),
        valid,
        np.zeros(1, dtype=np.int64),
        np.zeros(0),
        counts,
        accs,
        tss,
        values.astype(np.int64),
        iaccs,
    )
    for c in range(n):
        picked = [
            int(v) for v, cc, ok in zip(values, contact, valid, strict=True) if cc == c and ok
        ]
        assert counts[0, 0, c] == len(picked)
        if picked:
            assert int(iaccs[0, 0, c]) == (min if kind == "min" else max)(picked)
    assert not accs.any()  # the float accumulators are not touched


@pytest.mark.parametrize("op", list(OP_CODES))
@pytest.mark.parametrize("rhs", [2**63, 2**70, -(2**63) - 1, -(2**80)])
def test_compare_mask_beyond_int64_is_exact(op: str, rhs: int) -> None:
    values = np.array([I64MIN, -1, 0, I64MAX], dtype=np.int64)
    got = filters.compare_mask(values, None, OP_CODES[op], rhs)
    want = [
        {"=": v == rhs, "!=": v != rhs, "<": v < rhs, "<=": v <= rhs, ">": v > rhs, ">=": v >= rhs}[
            op
        ]
        for v in values.tolist()
    ]
    assert got.tolist() == want


# ------------------------------------------------------------------ through the evaluator


def _rows() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """A contact per value (its purchases: the value and a small one) and
    pairs that float64 cannot order; profiles carry the same values."""
    events: list[dict[str, Any]] = []
    profiles: dict[str, dict[str, Any]] = {}
    for i, v in enumerate(VALUES):
        c = f"c{i}"
        events.append(_buy(c, 1, v))
        events.append(_buy(c, 2, None))  # missing: left out
        profiles[c] = {"contact_id": c, "loyalty_points": v}
    events += [_buy("pair", 1, BIG + 1), _buy("pair", 2, BIG), _buy("pair", 3, BIG + 2)]
    events += [_buy("neg", 1, -BIG - 1), _buy("neg", 2, -BIG), _buy("neg", 3, I64MIN)]
    events.append({"contact_id": "viewer", "type": "viewed_product", "ts": _ts(1)})
    return events, profiles


def _ts(day: int) -> str:
    return f"2026-10-{day:02d}T00:00:00Z"


def _buy(c: str, day: int, items: int | None) -> dict[str, Any]:
    return {"contact_id": c, "type": "purchased", "ts": _ts(day), "items": items}


def _reference(cond: a.Cond, events: list[dict[str, Any]], profiles: dict[str, Any]) -> set[str]:
    ref_events = [
        Event(
            None,
            e["contact_id"],
            e["type"],
            dt.datetime.fromisoformat(e["ts"].replace("Z", "+00:00")),
            None,
            {k: v for k, v in e.items() if k not in ("contact_id", "type", "ts") and v is not None},
        )
        for e in events
    ]
    profs = {c: {k: v for k, v in p.items() if k != "contact_id"} for c, p in profiles.items()}
    return evaluate(cond, events=ref_events, profiles=profs, schema=SCHEMA, now=NOW)


LITERALS: list[int | float] = [
    BIG,
    BIG + 1,
    BIG + 2,
    -BIG - 1,
    I64MAX,
    I64MIN,
    I64MAX - 1,
    float(BIG),
    BIG + 0.5 - 0.5,
    1.5,
    -1e30,
    1e30,
    2**64,
]


@pytest.mark.parametrize("func", ["min", "max"])
@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
@pytest.mark.parametrize("field", ["items", "profile.loyalty_points"])
def test_int_min_max_agree_with_the_reference(func: a.AggFunc, op: a.CompareOp, field: str) -> None:
    events, profiles = _rows()
    snap = build_snapshot(SCHEMA, events, list(profiles.values()))
    for value in LITERALS:
        cond = a.Aggregate(func, ev(field), sel("purchased"), None, None, op, a.NumberLit(value))
        got = set(compile_condition(cond, SCHEMA, timezone="UTC").evaluate(snap, NOW).ids())
        assert got == _reference(cond, events, profiles), (func, op, field, value)


@pytest.mark.parametrize("threads", [1, 2])
def test_an_output_no_lane_folds_may_have_no_contacts_one_a_lane_folds_may_not(
    threads: int,
) -> None:
    # a float sum folds into accs: iaccs may be empty; an int max folds into
    # iaccs: accs may be empty; a lane whose own output is empty is refused
    # before any kernel writes (it would write out of bounds)
    contact = np.array([0, 1, 1, 2], dtype=np.int32)
    ts = np.arange(4, dtype=np.int64)
    vals = np.array([1.5, 2.0, 3.0, 4.0])
    ints = np.array([7, 9, 8, BIG], dtype=np.int64)

    def run(kind: int, accs_n: int, iaccs_n: int) -> tuple[np.ndarray, ...]:
        counts = np.zeros((threads, 1, 3), dtype=np.int64)
        accs = np.zeros((threads, 1, accs_n), dtype=np.float64)
        iaccs = np.zeros((threads, 1, iaccs_n), dtype=np.int64)
        tss = np.zeros((threads, 0, 3), dtype=np.int64)
        args = (
            np.array([kind], dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.zeros(1, dtype=np.bool_),
            np.zeros(1, dtype=np.int64),
            np.zeros(0, dtype=np.bool_),
            np.zeros(1, dtype=np.int64),
            vals,
        )
        lanes.scan_lanes(contact, ts, [(0, 4)], *args, counts, accs, tss, ints, iaccs)
        lanes.merge_threads([kind], [], counts, accs, tss, iaccs)
        return counts[0, 0], accs[0, 0], iaccs[0, 0]

    counts, sums, _ = run(lanes.SUM, 3, 0)
    assert counts.tolist() == [1, 2, 1] and sums.tolist() == [1.5, 5.0, 4.0]
    counts, _, maxes = run(lanes.IMAX, 0, 3)
    assert counts.tolist() == [1, 2, 1] and maxes.tolist() == [7, 9, BIG]
    for kind, accs_n, iaccs_n in ((lanes.SUM, 0, 3), (lanes.IMAX, 3, 0)):
        with pytest.raises(ValueError, match="no column per contact"):
            run(kind, accs_n, iaccs_n)
