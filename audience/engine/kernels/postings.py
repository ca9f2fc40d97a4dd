"""Rows grouped by dictionary code (an inverted index of one column).

``group_rows`` is a counting sort: linear in the rows plus the codes, and
stable, so each code's rows stay ascending and a window of rows is a binary
search within a code's group."""

from __future__ import annotations

import numpy as np

from audience.engine.kernels._checks import as_valid, check_1d
from audience.engine.kernels.config import I32, I64, NJIT, B, njit, ro, rw


@njit([I64(ro(I32), ro(B), B, rw(I64), rw(I32))], **NJIT)
def _group_rows(
    codes: np.ndarray, valid: np.ndarray, has_valid: bool, start: np.ndarray, rows: np.ndarray
) -> int:
    n_codes = np.uint32(len(start) - 1)
    for i in range(len(codes)):
        c = codes[i]
        if np.uint32(c) < n_codes and not (has_valid and not valid[i]):
            start[c + 1] += 1
    for k in range(len(start) - 1):
        start[k + 1] += start[k]
    pos = start[:-1].copy()
    for i in range(len(codes)):
        c = codes[i]
        if np.uint32(c) < n_codes and not (has_valid and not valid[i]):
            rows[pos[c]] = i
            pos[c] += 1
    return start[len(start) - 1]


def group_rows(
    codes: np.ndarray, valid: np.ndarray | None, n_codes: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(start, rows)``: the rows with code ``c`` (present, ``0 <= c <
    n_codes``) are ``rows[start[c]:start[c + 1]]``, ascending."""
    codes = check_1d("codes", codes, (np.int32,))
    if len(codes) >= 2**31:
        raise ValueError("too many rows for int32 row numbers")
    if n_codes < 0:
        raise ValueError("n_codes must be non-negative")
    v, has_valid = as_valid(valid, len(codes))
    start = np.zeros(n_codes + 1, dtype=np.int64)
    rows = np.empty(len(codes), dtype=np.int32)
    k = _group_rows(codes, v, has_valid, start, rows)
    return start, (rows if k == len(rows) else rows[:k].copy())
