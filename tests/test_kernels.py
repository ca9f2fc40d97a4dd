"""Unit tests of the numba kernels (through their validating wrappers)."""

from __future__ import annotations

import numpy as np
import pytest

from audience.compiler.kernels import filters, reduce, sequence
from audience.compiler.kernels.config import NJIT, OP_CODES, PARALLEL

I32 = np.int32
I64 = np.int64


def test_config_flags() -> None:
    assert NJIT == {"cache": True, "nogil": True}
    assert PARALLEL["parallel"] is True and PARALLEL["cache"] is True


def test_lut_mask_codes_outside_table_and_invalid_rows_are_false() -> None:
    codes = np.array([0, 1, 2, -1, 5, 1], dtype=I32)
    lut = np.array([False, True, True])
    valid = np.array([True, True, True, True, True, False])
    assert filters.lut_mask(codes, lut).tolist() == [False, True, True, False, False, True]
    assert filters.lut_mask(codes, lut, valid).tolist() == [False, True, True, False, False, False]


def test_lut_mask_rejects_wrong_dtypes() -> None:
    with pytest.raises(TypeError):
        filters.lut_mask(np.array([0], dtype=I64), np.array([True]))
    with pytest.raises(ValueError):
        filters.lut_mask(np.array([0], dtype=I32), np.array([True]), np.array([True, False]))


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("=", [False, True, False, False]),
        ("!=", [True, False, True, False]),
        ("<", [True, False, False, False]),
        ("<=", [True, True, False, False]),
        (">", [False, False, True, False]),
        (">=", [False, True, True, False]),
    ],
)
def test_compare_mask_every_op_with_a_missing_value(op: str, expected: list[bool]) -> None:
    valid = np.array([True, True, True, False])
    ints = np.array([1, 2, 3, 2], dtype=I64)
    floats = ints.astype(np.float64)
    assert filters.compare_mask(ints, valid, OP_CODES[op], 2).tolist() == expected
    assert filters.compare_mask(floats, valid, OP_CODES[op], 2.0).tolist() == expected
    days = ints.astype(I32)
    assert filters.compare_mask(days, valid, OP_CODES[op], 2).tolist() == expected


def test_compare_mask_bool_and_true_false_codes() -> None:
    vals = np.array([True, False, True])
    assert filters.compare_mask(vals, None, OP_CODES["="], 1).tolist() == [True, False, True]
    assert filters.compare_mask(vals, None, filters.OP_FALSE, 0).tolist() == [False] * 3
    valid = np.array([True, False, True])
    assert filters.compare_mask(vals, valid, filters.OP_TRUE, 0).tolist() == [True, False, True]
    with pytest.raises(TypeError):
        filters.compare_mask(np.array([1], dtype=I64), None, 0, 1.5)
    with pytest.raises(ValueError):
        filters.compare_mask(np.array([1], dtype=I64), None, 9, 1)


@pytest.mark.parametrize(
    ("op", "rhs", "xs_true"),
    [
        ("<", 2.5, [1, 2]),
        ("<=", 2.5, [1, 2]),
        (">", 2.5, [3]),
        (">=", 2.5, [3]),
        ("=", 2.5, []),
        ("!=", 2.5, [1, 2, 3]),
        ("<", -0.5, []),
        (">=", 2.0, [2, 3]),
        ("<", float("inf"), [1, 2, 3]),
        (">", float("inf"), []),
        ("!=", float("nan"), [1, 2, 3]),
    ],
)
def test_integral_op_matches_float_semantics(op: str, rhs: float, xs_true: list[int]) -> None:
    xs = np.array([1, 2, 3], dtype=I64)
    code, r = filters.integral_op(op, rhs)
    got = filters.compare_mask(xs, None, code, r)
    assert xs[got].tolist() == xs_true


def test_list_mask_membership_and_nonempty() -> None:
    offsets = np.array([0, 2, 2, 3, 5], dtype=I32)
    codes = np.array([0, 1, 2, 1, 1], dtype=I32)
    lut = np.array([False, False, True])
    assert filters.list_mask(offsets, codes, None, lut).tolist() == [False, False, True, False]
    valid = np.array([True, True, False, True])
    assert filters.list_mask(offsets, codes, valid, None).tolist() == [True, False, False, True]
    # a slice of the offsets (rows 2..3) still points into the whole codes array
    assert filters.list_mask(offsets[2:5], codes, None, lut).tolist() == [True, False]
    with pytest.raises(ValueError):
        filters.list_mask(np.array([0, 9], dtype=I32), codes, None, lut)


def test_gather() -> None:
    per = np.array([True, False, True])
    assert filters.gather(np.array([2, 1, 0, 2], dtype=I32), per).tolist() == [
        True,
        False,
        True,
        True,
    ]
    with pytest.raises(ValueError):
        filters.gather(np.array([3], dtype=I32), per)


def test_count_into_accumulates_with_and_without_mask() -> None:
    out = np.zeros(3, dtype=I64)
    contact = np.array([0, 2, 2, 1], dtype=I32)
    reduce.count_into(contact, None, out)
    reduce.count_into(contact, np.array([False, True, False, False]), out)
    assert out.tolist() == [1, 1, 3]
    with pytest.raises(ValueError):
        reduce.count_into(np.array([3], dtype=I32), None, out)


def test_agg_into_sum_min_max_skips_missing_and_masked() -> None:
    contact = np.array([0, 0, 1, 1, 2], dtype=I32)
    values = np.array([5, 7, 4, 100, 1], dtype=I64)
    valid = np.array([True, True, True, False, True])
    mask = np.array([True, True, True, True, False])
    for kind, want in (
        ("sum", [12.0, 4.0, 0.0]),
        ("min", [5.0, 4.0, 0.0]),
        ("max", [7.0, 4.0, 0.0]),
    ):
        acc = np.zeros(3)
        n = np.zeros(3, dtype=I64)
        reduce.agg_into(contact, mask, values, valid, kind, acc, n)
        assert acc.tolist() == want
        assert n.tolist() == [2, 1, 0]
    with pytest.raises(ValueError):
        reduce.agg_into(contact, None, values, None, "avg", np.zeros(3), np.zeros(3, dtype=I64))


def test_agg_into_negative_min_and_max_start_from_the_first_value() -> None:
    acc = np.zeros(1)
    n = np.zeros(1, dtype=I64)
    reduce.agg_into(np.zeros(2, dtype=I32), None, np.array([-5.0, -3.0]), None, "max", acc, n)
    assert acc.tolist() == [-3.0]


def test_ts_extreme_into() -> None:
    contact = np.array([0, 1, 0], dtype=I32)
    ts = np.array([10, 20, 30], dtype=I64)
    newest = np.full(3, reduce.INT64_MIN, dtype=I64)
    oldest = np.full(3, reduce.INT64_MAX, dtype=I64)
    reduce.ts_extreme_into(contact, None, ts, True, newest)
    reduce.ts_extreme_into(contact, np.array([False, True, True]), ts, False, oldest)
    assert newest.tolist() == [30, 20, reduce.INT64_MIN]
    assert oldest.tolist() == [30, 20, reduce.INT64_MAX]


def test_distinct_counts_any_order() -> None:
    contact = np.array([1, 0, 1, 1, 0, 2], dtype=I32)
    value = np.array([5, 3, 5, 6, 3, 7], dtype=I64)
    assert reduce.distinct_counts(contact, value, 4).tolist() == [1, 2, 1, 0]
    fv = np.array([0.5, 0.5, 1.5], dtype=np.float64)
    assert reduce.distinct_counts(np.array([0, 0, 0], dtype=I32), fv, 1).tolist() == [2]


def _seq(
    first: list[tuple[int, int, int]], second: list[tuple[int, int]], then_not: bool, n: int = 3
) -> list[bool]:
    c1 = np.array([c for c, _, _ in first], dtype=I32)
    t1 = np.array([t for _, t, _ in first], dtype=I64)
    d1 = np.array([d for _, _, d in first], dtype=I64)
    c2 = np.array([c for c, _ in second], dtype=I32)
    t2 = np.array([t for _, t in second], dtype=I64)
    out: list[bool] = sequence.sequence_match(c1, t1, d1, c2, t2, then_not, n).tolist()
    return out


def test_sequence_then() -> None:
    # contact 0: E2 at 15 follows E1 at 10 within deadline 20
    # contact 1: E2 at the same ts as E1 does not follow it; the next is too late
    # contact 2: E2 only before E1
    first = [(0, 10, 20), (1, 10, 20), (2, 10, 20)]
    second = [(0, 15), (1, 10), (1, 21), (2, 5)]
    assert _seq(first, second, False) == [True, False, False]
    assert _seq(first, second, True) == [False, True, True]


def test_sequence_deadline_is_inclusive_and_any_e1_suffices() -> None:
    first = [(0, 10, 20), (0, 30, 40)]
    assert _seq(first, [(0, 20)], False, 1) == [True]
    # then not: the E1 at 30 has no E2 within its span
    assert _seq(first, [(0, 20)], True, 1) == [True]
    assert _seq([(0, 10, 20)], [(0, 20)], True, 1) == [False]


def test_sequence_rejects_unsorted_rows() -> None:
    with pytest.raises(ValueError):
        _seq([(1, 10, 20), (0, 10, 20)], [], False)
    with pytest.raises(ValueError):
        _seq([(0, 10, 20), (0, 5, 20)], [], False)


def test_sort_by_contact_ts() -> None:
    c = np.array([1, 0, 1, 0], dtype=I32)
    t = np.array([5, 9, 1, 2], dtype=I64)
    order = sequence.sort_by_contact_ts(c, t)
    assert list(zip(c[order].tolist(), t[order].tolist(), strict=True)) == [
        (0, 2),
        (0, 9),
        (1, 1),
        (1, 5),
    ]


def test_non_contiguous_inputs_are_accepted_and_outputs_must_be_contiguous() -> None:
    codes = np.array([0, 9, 1, 9, 2, 9], dtype=I32)[::2]
    assert filters.lut_mask(codes, np.array([True, False, True])).tolist() == [True, False, True]
    out = np.zeros(6, dtype=I64)[::2]
    with pytest.raises(ValueError):
        reduce.count_into(np.array([0], dtype=I32), None, out)
    frozen = np.zeros(3, dtype=I64)
    frozen.setflags(write=False)
    with pytest.raises(ValueError):
        reduce.count_into(np.array([0], dtype=I32), None, frozen)
