"""Per-contact masks in one pass: a value range test, and a mask's indexes.

At millions of contacts a test written as numpy expressions (``has & (ts >=
lo) & (ts <= hi)``) makes a temporary per operator, each a full pass over the
contacts: several times the cost of one loop.  A count test and a recency
test are both a range of int64 values (or of bytes: a narrow count,
``engine.counting``), so one kernel serves them.
"""

from __future__ import annotations

import numpy as np
from numba import types

from audience.engine.kernels._checks import check_1d
from audience.engine.kernels.config import I64, NJIT, U8, B, njit, ro, rw


@njit([types.void(ro(I64), I64, I64, rw(B)), types.void(ro(U8), U8, U8, rw(B))], **NJIT)
def _range_mask(values: np.ndarray, lo: int, hi: int, out: np.ndarray) -> None:
    # ``&`` of two bools, no branch: the loop vectorizes
    for i in range(len(values)):
        v = values[i]
        out[i] = (v >= lo) & (v <= hi)


def range_mask(values: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``lo <= values <= hi`` (int64 or uint8 values; the bounds are any
    Python ints: beyond the values' type they are clamped, an empty range
    passes nothing)."""
    values = check_1d("values", values, (np.int64, np.uint8))
    out = np.empty(len(values), dtype=np.bool_)
    info = np.iinfo(values.dtype)
    lo, hi = max(int(lo), int(info.min)), min(int(hi), int(info.max))
    if lo > hi:
        out.fill(False)
        return out
    # bounds of the values' type: a byte loop compares a vector of 32 at once
    _range_mask(values, values.dtype.type(lo), values.dtype.type(hi), out)
    return out


@njit([types.void(ro(types.uint8), rw(I64))], **NJIT)
def _indexes(mask: np.ndarray, out: np.ndarray) -> None:
    # every index is written and the cursor advances by the mask byte: no
    # data-dependent branch (``np.flatnonzero`` branches on each byte, slow
    # on a mask of random contacts); ``out`` has one slot to spare for the
    # write after the last member
    k = 0
    for i in range(len(mask)):
        out[k] = i
        k += mask[i] != 0


def indexes(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(mask)`` for a 1-d bool mask (int64 indexes)."""
    mask = check_1d("mask", mask, (np.bool_,))
    k = int(np.count_nonzero(mask))
    if not len(mask) <= 40 * k <= 10 * len(mask):
        # few members (numpy skips runs of zero bytes) or many (its branch is
        # then predictable): numpy is as fast or faster (measured at 2.5M)
        return np.flatnonzero(mask)
    out = np.empty(k + 1, dtype=np.int64)
    _indexes(mask.view(np.uint8), out)
    return out[:k]
