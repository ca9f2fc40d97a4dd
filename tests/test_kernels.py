"""Unit tests of the numba kernels (through their validating wrappers)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from audience.engine.kernels import filters, lanes, reduce, sequence
from audience.engine.kernels.config import NJIT, OP_CODES, PARALLEL

I32 = np.int32
I64 = np.int64


def test_config_flags() -> None:
    assert NJIT == {"cache": True, "nogil": True}
    assert PARALLEL["parallel"] is True and PARALLEL["cache"] is True


def _jit_flags(text: str) -> list[tuple[int, str]]:
    """(line, how) of every ``njit``/``jit`` use in ``text`` whose flags are
    not ``**NJIT`` or ``**PARALLEL`` of the config: flags spelled out, or none."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.FunctionDef):
            continue
        for dec in node.decorator_list:
            func = dec.func if isinstance(dec, ast.Call) else dec
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in ("njit", "jit"):
                continue
            kws = dec.keywords if isinstance(dec, ast.Call) else []
            spread = [k.value for k in kws if k.arg is None]
            named = [k.arg for k in kws if k.arg is not None and k.arg != "inline"]
            if named or not any(getattr(v, "id", "") in ("NJIT", "PARALLEL") for v in spread):
                out.append((dec.lineno, ast.unparse(dec)))
    return out


def test_every_kernel_takes_its_numba_flags_from_the_config() -> None:
    # one place decides caching, nogil and threads for the engine's kernels and
    # the store's and the delivery log's alike (``inline`` is the kernel's own)
    root = Path(__file__).resolve().parents[1] / "audience"
    config = root / "engine" / "kernels" / "config.py"
    found = [
        f"{path.relative_to(root.parent)}:{line}: {how}"
        for path in sorted(root.rglob("*.py"))
        if path != config
        for line, how in _jit_flags(path.read_text(encoding="utf-8"))
    ]
    assert not found, "numba flags outside the config:\n" + "\n".join(found)
    bad = (
        "@njit(cache=True)\ndef f(): pass\n"
        "@numba.jit\ndef g(): pass\n"
        "@njit(**NJIT)\ndef h(): pass\n"
    )
    assert [line for line, _ in _jit_flags(bad)] == [1, 3]


def test_lut_mask_codes_outside_table_and_invalid_rows_are_false() -> None:
    codes = np.array([0, 1, 2, -1, 5, 1], dtype=I32)
    lut = np.array([False, True, True])
    valid = np.array([True, True, True, True, True, False])
    assert filters.lut_mask(codes, lut).tolist() == [False, True, True, False, False, True]
    assert filters.lut_mask(codes, lut, valid).tolist() == [False, True, True, False, False, False]


def test_masks_write_into_a_given_array_of_the_right_length_only() -> None:
    codes = np.array([0, 1, 2, -1, 5, 1], dtype=I32)
    lut = np.array([False, True, True])
    out = np.ones(6, dtype=np.bool_)  # stale contents: every entry is written
    assert filters.lut_mask(codes, lut, None, out) is out
    assert out.tolist() == [False, True, True, False, False, True]
    vals = np.array([1.0, 5.0, 3.0])
    out3 = np.zeros(3, dtype=np.bool_)
    assert filters.compare_mask(vals, None, OP_CODES[">"], 2.0, out3) is out3
    assert out3.tolist() == [False, True, True]
    for bad in (np.empty(5, np.bool_), np.empty(6, np.uint8), np.empty(12, np.bool_)[::2]):
        with pytest.raises((TypeError, ValueError)):
            filters.lut_mask(codes, lut, None, bad)
    with pytest.raises((TypeError, ValueError)):
        filters.compare_mask(vals, None, OP_CODES[">"], 2.0, np.empty(4, np.bool_))


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


def _fold(
    kinds: list[int],
    contact: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    values: np.ndarray | None = None,
    ts: np.ndarray | None = None,
    outputs: tuple[np.ndarray, ...] | None = None,
) -> tuple[np.ndarray, ...]:
    """One pass of ``lanes.scan_lanes`` over every row, a lane per kind in slot
    ``k`` of its outputs (aggregates: ``accs``, or ``iaccs`` for the int kinds
    with ``values`` as int64, and their value counts in ``counts``); the rows of
    ``mask`` only when given.  The outputs (counts, accs, tss, iaccs; one
    thread's: ``[0, slot, contact]``) are ``outputs`` (folded into further) or
    new ones up to the largest contact."""
    n_lanes, rows = len(kinds), len(contact)
    if outputs is None:
        n = int(contact.max()) + 1
        shape = (1, n_lanes, n)  # one thread
        outputs = (
            np.zeros(shape, dtype=I64),
            np.zeros(shape),
            np.zeros(shape, dtype=I64),
            np.zeros(shape, dtype=I64),
        )
        for k, kd in enumerate(kinds):
            if kd in (lanes.NEWEST, lanes.OLDEST):
                outputs[2][0, k] = reduce.INT64_MIN if kd == lanes.NEWEST else reduce.INT64_MAX
    counts, accs, tss, iaccs = outputs
    vals = np.zeros(rows) if values is None else values
    lanes.scan_lanes(
        contact,
        np.arange(rows, dtype=I64) if ts is None else ts,
        [(0, rows)] * n_lanes,
        np.array(kinds, dtype=I64),
        np.arange(n_lanes, dtype=I64),
        np.full(n_lanes, mask is not None),
        np.zeros(n_lanes, dtype=I64),
        np.zeros(0, dtype=bool) if mask is None else mask,
        np.zeros(n_lanes, dtype=I64),
        vals.astype(np.float64),
        counts,
        accs,
        tss,
        vals.astype(I64),
        iaccs,
    )
    return outputs


def test_count_lanes_accumulate_with_and_without_mask() -> None:
    contact = np.array([0, 2, 2, 1], dtype=I32)
    out = _fold([lanes.COUNT], contact)
    _fold([lanes.COUNT], contact, mask=np.array([False, True, False, False]), outputs=out)
    assert out[0][0, 0].tolist() == [1, 1, 3]
    with pytest.raises(ValueError, match="contact index"):
        _fold([lanes.COUNT], np.array([3], dtype=I32), outputs=out)


def test_aggregate_lanes_sum_min_max_fold_the_passing_rows_only() -> None:
    contact = np.array([0, 0, 1, 1, 2], dtype=I32)
    values = np.array([5, 7, 4, 100, 1], dtype=I64)
    # the fused pass folds a value's validity into the rows' mask: row 3 has
    # no value, row 4 does not pass
    valid = np.array([True, True, True, False, True])
    mask = np.array([True, True, True, True, False]) & valid
    kinds = [lanes.SUM, lanes.MIN, lanes.MAX, lanes.IMIN, lanes.IMAX]
    counts, accs, _, iaccs = _fold(kinds, contact, mask=mask, values=values)
    assert accs[0, 0].tolist() == [12.0, 4.0, 0.0]
    assert accs[0, 1].tolist() == iaccs[0, 3].tolist() == [5, 4, 0]
    assert accs[0, 2].tolist() == iaccs[0, 4].tolist() == [7, 4, 0]
    assert all(counts[0, k].tolist() == [2, 1, 0] for k in range(len(kinds)))
    with pytest.raises(ValueError, match="unknown kind"):
        _fold([99], contact)


def test_min_and_max_lanes_start_from_the_first_value() -> None:
    # not from the zeroed output: a max of negatives, a min of positives
    one = np.zeros(2, dtype=I32)
    _, accs, _, iaccs = _fold([lanes.MAX, lanes.IMAX], one, values=np.array([-5, -3]))
    assert accs[0, 0].tolist() == [-3.0] and iaccs[0, 1].tolist() == [-3]
    _, accs, _, iaccs = _fold([lanes.MIN, lanes.IMIN], one, values=np.array([5, 3]))
    assert accs[0, 0].tolist() == [3.0] and iaccs[0, 1].tolist() == [3]


def test_newest_and_oldest_lanes() -> None:
    contact = np.array([0, 1, 0, 2], dtype=I32)
    ts = np.array([10, 20, 30, 40], dtype=I64)
    _, _, newest, _ = _fold([lanes.NEWEST], contact, ts=ts, mask=np.array([1, 1, 1, 0], bool))
    _, _, oldest, _ = _fold([lanes.OLDEST], contact, ts=ts, mask=np.array([0, 1, 1, 0], bool))
    assert newest[0, 0].tolist() == [30, 20, reduce.INT64_MIN]
    assert oldest[0, 0].tolist() == [30, 20, reduce.INT64_MAX]


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
    contact = np.array([0, 9, 1, 9, 0, 9], dtype=I32)[::2]
    out = _fold([lanes.COUNT], contact)
    assert out[0][0, 0].tolist() == [2, 1]
    with pytest.raises(ValueError, match="C-contiguous"):
        _fold([lanes.COUNT], contact, outputs=(np.zeros((1, 1, 4), dtype=I64)[..., ::2], *out[1:]))
    out[0].setflags(write=False)
    with pytest.raises(ValueError, match="writable"):
        _fold([lanes.COUNT], contact, outputs=out)
