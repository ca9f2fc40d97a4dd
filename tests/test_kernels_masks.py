"""One-pass per-contact masks (kernels.masks) and the sequence kernel's kept
work array: the same answers as the numpy expressions and fresh arrays they
replace."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from audience.engine.kernels import masks, sequence
from audience.engine.kernels.reduce import INT64_MAX, INT64_MIN

I64_MIN, I64_MAX = int(INT64_MIN), int(INT64_MAX)
# values and bounds around the edges: 0 (a contact with no event has count 0),
# the int64 extremes (the ts sentinels), and bounds beyond int64
_edges = st.sampled_from([I64_MIN, I64_MIN + 1, -1, 0, 1, 2, 5, I64_MAX - 1, I64_MAX])
_values = st.lists(st.one_of(_edges, st.integers(-20, 20), st.integers(I64_MIN, I64_MAX)))
_bounds = st.one_of(_edges, st.integers(-20, 20), st.integers(-(2**70), 2**70))


@settings(max_examples=300, deadline=None)
@given(_values, _bounds, _bounds)
def test_range_mask_is_the_two_comparisons(values: list[int], lo: int, hi: int) -> None:
    arr = np.array(values, dtype=np.int64)
    want = [lo <= v <= hi for v in values]  # Python ints: exact at any size
    assert masks.range_mask(arr, lo, hi).tolist() == want


def test_range_mask_count_tests_of_zero() -> None:
    counts = np.array([0, 0, 1, 3, 10], dtype=np.int64)  # 0: a contact with no event
    assert masks.range_mask(counts, I64_MIN, 0).tolist() == [True, True, False, False, False]
    assert masks.range_mask(counts, 0, 0).tolist() == [True, True, False, False, False]
    assert masks.range_mask(counts, 3, I64_MAX).tolist() == [False, False, False, True, True]
    assert masks.range_mask(counts, 4, 3).tolist() == [False] * 5
    assert masks.range_mask(np.zeros(0, dtype=np.int64), 0, 1).tolist() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=300), st.integers(0, 7), st.integers(0, 40))
def test_indexes_is_flatnonzero(bits: list[bool], start: int, every: int) -> None:
    mask = np.array(bits, dtype=np.bool_)[start:]  # a view not at its buffer's start too
    if every:  # 1 in ``every`` set at most: the densities of both ways
        mask &= np.arange(len(mask)) % every == 0
    got = masks.indexes(mask)
    assert got.dtype == np.int64
    assert got.tolist() == np.flatnonzero(mask).tolist()


def _stream_case(
    rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n1, n2 = rng.integers(0, 25, 2)
    t1 = np.sort(rng.integers(0, 50, n1)).astype(np.int64)  # many ties
    t2 = np.sort(rng.integers(0, 50, n2)).astype(np.int64)
    c1 = rng.integers(0, n, n1).astype(np.int32)
    c2 = rng.integers(0, n, n2).astype(np.int32)
    return c1, t1, t1 + rng.integers(0, 15, n1), c2, t2


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 15), st.booleans())
def test_sequence_stream_leaves_a_kept_state_as_it_came(seed: int, n: int, then_not: bool) -> None:
    # one state array through many calls (as the engine keeps it between
    # evaluations): each answer is the one a fresh state gives, and the array
    # is back to NO_STATE everywhere after each call
    rng = np.random.default_rng(seed)
    state = np.full(n, sequence.NO_STATE, dtype=np.int64)
    for _ in range(6):
        c1, t1, deadline, c2, t2 = _stream_case(rng, n)
        got = sequence.sequence_stream(c1, t1, deadline, c2, t2, then_not, n, state)
        fresh = sequence.sequence_stream(c1, t1, deadline, c2, t2, then_not, n)
        o1 = sequence.sort_by_contact_ts(c1, t1)
        o2 = sequence.sort_by_contact_ts(c2, t2)
        want = sequence.sequence_match(c1[o1], t1[o1], deadline[o1], c2[o2], t2[o2], then_not, n)
        assert got.tolist() == fresh.tolist() == want.tolist()
        assert (state == sequence.NO_STATE).all()
