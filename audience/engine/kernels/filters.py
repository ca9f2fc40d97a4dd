"""Row filters: per-row bool masks from codes, values and validity.

String predicates never reach a kernel as strings: the compiler decides them
once per dictionary value into a bool lookup table by code, and the kernel
only indexes it (a code outside the table, e.g. -1, is false).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import types

from audience.engine.kernels._checks import as_valid, check_1d, check_out
from audience.engine.kernels.config import (
    F64,
    I32,
    I64,
    NJIT,
    OP_CODES,
    VALUE_TYPES,
    B,
    njit,
    ro,
    rw,
)

OP_FALSE = 6  # every present value fails (e.g. an int column ``= 2.5``)
OP_TRUE = 7  # every present value passes
INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)

_CODE_TYPES = (np.int32,)
_NUM_TYPES = (np.int64, np.float64, np.int32, np.uint8)


@njit([types.void(ro(I32), ro(B), ro(B), B, rw(B))], **NJIT)
def _lut_mask(
    codes: np.ndarray, lut: np.ndarray, valid: np.ndarray, has_valid: bool, out: np.ndarray
) -> None:
    # uint8 views and one unsigned bounds check (a negative code wraps to a
    # huge one): a branch-light loop, about 2x faster than the naive one
    n_lut = np.uint32(len(lut))
    lu = lut.view(np.uint8)
    o = out.view(np.uint8)
    if has_valid:
        vv = valid.view(np.uint8)
        for i in range(len(codes)):
            c = codes[i]
            r = np.uint8(0)
            if np.uint32(c) < n_lut:
                r = lu[c] & vv[i]
            o[i] = r
    else:
        for i in range(len(codes)):
            c = codes[i]
            r = np.uint8(0)
            if np.uint32(c) < n_lut:
                r = lu[c]
            o[i] = r


def lut_mask(
    codes: np.ndarray,
    lut: np.ndarray,
    valid: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``out[i] = lut[codes[i]]`` for present codes inside the table, else
    False; into ``out`` when given (a leased array: see ``_out``)."""
    codes = check_1d("codes", codes, _CODE_TYPES)
    lut = check_1d("lut", lut, (np.bool_,))
    v, has_valid = as_valid(valid, len(codes))
    out = _out(out, len(codes))
    _lut_mask(codes, lut, v, has_valid, out)
    return out


def _out(out: np.ndarray | None, n: int) -> np.ndarray:
    """A new bool array of ``n``, or ``out`` checked to be one: a caller
    passes an array of its own (at millions of contacts a fresh one costs its
    page faults, as much as the pass that fills it)."""
    if out is None:
        return np.empty(n, dtype=np.bool_)
    return check_out("out", out, np.bool_, n)


@njit(
    [types.void(ro(t), ro(B), B, I64, F64 if t == F64 else I64, rw(B)) for t in VALUE_TYPES], **NJIT
)
def _compare_mask(
    values: np.ndarray, valid: np.ndarray, has_valid: bool, op: int, rhs: Any, out: np.ndarray
) -> None:
    # one tight loop per op (the op test hoisted out of the row loop)
    n = len(values)
    if op == 0:
        for i in range(n):
            out[i] = values[i] == rhs
    elif op == 1:
        for i in range(n):
            out[i] = values[i] != rhs
    elif op == 2:
        for i in range(n):
            out[i] = values[i] < rhs
    elif op == 3:
        for i in range(n):
            out[i] = values[i] <= rhs
    elif op == 4:
        for i in range(n):
            out[i] = values[i] > rhs
    elif op == 5:
        for i in range(n):
            out[i] = values[i] >= rhs
    else:
        for i in range(n):
            out[i] = op == 7
    if has_valid:
        for i in range(n):
            out[i] = out[i] and valid[i]


def integral_op(op: str, rhs: float) -> tuple[int, int]:
    """Turn ``int_column OP float`` into an exact integer comparison (op code, rhs),
    so int columns never go through float64 and lose precision."""
    if isinstance(rhs, int) or float(rhs).is_integer():
        return OP_CODES[op], int(rhs)
    if math.isnan(rhs):
        return (OP_TRUE if op == "!=" else OP_FALSE), 0
    if op == "=":
        return OP_FALSE, 0
    if op == "!=":
        return OP_TRUE, 0
    if math.isinf(rhs):
        passes = (rhs > 0) == (op in ("<", "<="))
        return (OP_TRUE if passes else OP_FALSE), 0
    if op in ("<", ">="):
        return OP_CODES[op], math.ceil(rhs)
    return OP_CODES[op], math.floor(rhs)


def compare_mask(
    values: np.ndarray,
    valid: np.ndarray | None,
    op: int,
    rhs: int | float,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``values OP rhs`` for present values (missing: False).  ``op`` is an
    ``OP_CODES`` value or ``OP_FALSE``/``OP_TRUE``; int-like columns take an
    int ``rhs`` (see ``integral_op``), float columns a float.  Into ``out``
    when given."""
    values = check_1d("values", values, (*_NUM_TYPES, np.bool_))
    if not 0 <= op <= OP_TRUE:
        raise ValueError(f"unknown comparison op code {op}")
    if values.dtype == np.bool_:
        values = values.view(np.uint8)
    v, has_valid = as_valid(valid, len(values))
    out = _out(out, len(values))
    if values.dtype == np.float64:
        _compare_mask(values, v, has_valid, op, float(rhs), out)
    else:
        if not isinstance(rhs, int | np.integer):
            raise TypeError("an integer column compares with an integer; use integral_op")
        big = int(rhs)
        if not INT64_MIN <= big <= INT64_MAX:
            # beyond int64 every value is on the same side of ``rhs``
            below = big > INT64_MAX  # every value is below rhs
            passes = {0: False, 1: True, 2: below, 3: below, 4: not below, 5: not below}
            op = op if op >= OP_FALSE else (OP_TRUE if passes[op] else OP_FALSE)
            big = 0
        _compare_mask(values, v, has_valid, op, np.int64(big), out)
    return out


@njit([types.void(ro(o), ro(I32), ro(B), B, ro(B), B, rw(B)) for o in (I32, I64)], **NJIT)
def _list_mask(
    offsets: np.ndarray,
    codes: np.ndarray,
    valid: np.ndarray,
    has_valid: bool,
    lut: np.ndarray,
    nonempty_only: bool,
    out: np.ndarray,
) -> None:
    n_lut = len(lut)
    for i in range(len(offsets) - 1):
        a = offsets[i]
        b = offsets[i + 1]
        if has_valid and not valid[i]:
            out[i] = False
            continue
        if nonempty_only:
            out[i] = b > a
            continue
        hit = False
        for k in range(a, b):
            c = codes[k]
            if 0 <= c < n_lut and lut[c]:
                hit = True
                break
        out[i] = hit


def list_mask(
    offsets: np.ndarray,
    codes: np.ndarray,
    valid: np.ndarray | None,
    lut: np.ndarray | None,
) -> np.ndarray:
    """Per list row (``len(offsets) - 1`` rows): True when some element's code
    is True in ``lut``; with ``lut`` None, True when the list is non-empty
    (``is set``).  ``offsets`` index into ``codes``."""
    offsets = check_1d("offsets", offsets, (np.int32, np.int64))
    codes = check_1d("codes", codes, _CODE_TYPES)
    n = len(offsets) - 1
    if n < 0:
        raise ValueError("offsets needs at least one entry")
    if n > 0 and (offsets[0] < 0 or offsets[-1] > len(codes)):
        raise ValueError("offsets point outside codes")
    v, has_valid = as_valid(valid, n)
    out = np.empty(n, dtype=np.bool_)
    table = np.zeros(0, dtype=np.bool_) if lut is None else lut
    _list_mask(offsets, codes, v, has_valid, table, lut is None, out)
    return out


@njit([types.void(ro(I32), ro(B), rw(B))], **NJIT)
def _gather(contact: np.ndarray, per_contact: np.ndarray, out: np.ndarray) -> None:
    for i in range(len(contact)):
        out[i] = per_contact[contact[i]]


def gather(contact: np.ndarray, per_contact: np.ndarray) -> np.ndarray:
    """``per_contact[contact[i]]`` per row: a profile predicate seen from events."""
    contact = check_1d("contact", contact, (np.int32,))
    per_contact = check_1d("per_contact", per_contact, (np.bool_,))
    if len(contact) and (contact.min() < 0 or contact.max() >= len(per_contact)):
        raise ValueError("contact index outside the contact universe")
    out = np.empty(len(contact), dtype=np.bool_)
    _gather(contact, per_contact, out)
    return out


@njit([I64(ro(I32), I64, I64, ro(B), B, ro(B), B, I64, rw(I64))], **NJIT)
def _select_rows(
    type_: np.ndarray,
    lo: int,
    hi: int,
    type_lut: np.ndarray,
    any_type: bool,
    mask: np.ndarray,
    has_mask: bool,
    mask_base: int,
    out: np.ndarray,
) -> int:
    n_lut = np.uint32(len(type_lut))
    k = 0
    for i in range(lo, hi):
        if not any_type:
            t = type_[i]
            if np.uint32(t) >= n_lut or not type_lut[t]:
                continue
        if has_mask and not mask[i - mask_base]:
            continue
        out[k] = i
        k += 1
    return k


def select_rows(
    type_: np.ndarray,
    lo: int,
    hi: int,
    type_lut: np.ndarray | None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """The row numbers in ``[lo, hi)`` whose type code is True in ``type_lut``
    (None: any type) and, given ``mask`` (one bool per row of ``[lo, hi)``),
    whose mask is set; ascending."""
    type_ = check_1d("type", type_, _CODE_TYPES)
    if not 0 <= lo <= hi <= len(type_):
        raise ValueError(f"rows [{lo}, {hi}) outside the {len(type_)} rows")
    lut = EMPTY_LUT if type_lut is None else check_1d("type_lut", type_lut, (np.bool_,))
    m, has_mask = as_valid(mask, hi - lo)
    out = np.empty(hi - lo, dtype=np.int64)
    k = _select_rows(type_, lo, hi, lut, type_lut is None, m, has_mask, lo, out)
    return out[:k]


EMPTY_LUT = np.zeros(0, dtype=np.bool_)


@njit([I64(ro(I32), ro(I32), B, I64, I64, ro(B), B, I64, ro(I32), I64, rw(I32), rw(I32))], **NJIT)
def _select_pairs(
    contact: np.ndarray,
    rows: np.ndarray,
    has_rows: bool,
    lo: int,
    hi: int,
    mask: np.ndarray,
    has_mask: bool,
    mask_base: int,
    codes: np.ndarray,
    code_base: int,
    out_c: np.ndarray,
    out_v: np.ndarray,
) -> int:
    # compaction: every position is written, the cursor advances by the mask
    # bit (no data-dependent branch)
    m = mask.view(np.uint8)
    k = 0
    for i in range(lo, hi):
        row = rows[i] if has_rows else i
        out_c[k] = contact[i]
        out_v[k] = codes[row - code_base]
        if has_mask:
            k += int(m[row - mask_base])
        else:
            k += 1
    return k


def select_pairs(
    contact: np.ndarray,
    rows: np.ndarray | None,
    lo: int,
    hi: int,
    mask: np.ndarray | None,
    mask_base: int,
    codes: np.ndarray,
    code_base: int,
    out: tuple[np.ndarray, np.ndarray] | None = None,
    at: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(contact[i], codes[row - code_base])`` for the positions ``i`` in
    ``[lo, hi)`` whose ``mask[row - mask_base]`` is set (every one when
    ``mask`` is None), where ``row`` is ``rows[i]`` (``i`` when None).  With
    ``out``, written into those two int32 arrays from position ``at`` (they
    need room for ``hi - lo`` pairs there); the pairs are returned as views."""
    contact = check_1d("contact", contact, _CODE_TYPES)
    codes = check_1d("codes", codes, _CODE_TYPES)
    has_rows = rows is not None
    r = EMPTY_ROWS if rows is None else check_1d("rows", rows, (np.int32,), len(contact))
    if not 0 <= lo <= hi <= len(contact):
        raise ValueError(f"positions [{lo}, {hi}) outside the {len(contact)} rows")
    m = EMPTY_LUT if mask is None else check_1d("mask", mask, (np.bool_,))
    if lo < hi:
        first, last = (int(r[lo]), int(r[hi - 1])) if has_rows else (lo, hi - 1)
        if not 0 <= first - code_base <= last - code_base < len(codes):
            raise ValueError("codes do not cover the rows")
        if mask is not None and not 0 <= first - mask_base <= last - mask_base < len(m):
            raise ValueError("mask does not cover the rows")
    if out is None:
        out_c = np.empty(hi - lo, dtype=np.int32)
        out_v = np.empty(hi - lo, dtype=np.int32)
    else:
        out_c, out_v = (check_out("out", o, np.int32) for o in out)
        if not 0 <= at <= min(len(out_c), len(out_v)) - (hi - lo):
            raise ValueError(f"out has no room for {hi - lo} pairs at {at}")
        out_c, out_v = out_c[at:], out_v[at:]
    k = _select_pairs(
        contact, r, has_rows, lo, hi, m, mask is not None, mask_base, codes, code_base, out_c, out_v
    )
    return out_c[:k], out_v[:k]


EMPTY_ROWS = np.zeros(0, dtype=np.int32)
