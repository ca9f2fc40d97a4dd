"""Per-contact reductions: scatter the rows that pass a filter into arrays
over the contact universe.  Each ``*_into`` accumulates, so a condition that
reads several partitions calls it once per partition slice."""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange, types

from audience.compiler.kernels._checks import as_mask, as_valid, check_1d, check_out
from audience.compiler.kernels.config import (
    F64,
    I32,
    I64,
    NJIT,
    PARALLEL,
    PARALLEL_MIN_ROWS,
    VALUE_TYPES,
    B,
    ro,
    rw,
)

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min
_VALUE_TYPES = (np.int64, np.float64, np.int32, np.uint8)
_INT_VALUES = (I64, I32, types.uint8)


def _check_rows(contact: np.ndarray, out: np.ndarray) -> np.ndarray:
    contact = check_1d("contact", contact, (np.int32,))
    if len(contact) and (contact.min() < 0 or contact.max() >= len(out)):
        raise ValueError("contact index outside the output array")
    return contact


@njit([types.void(ro(I32), ro(B), B, rw(I64))], **NJIT)
def _count_into(contact: np.ndarray, mask: np.ndarray, has_mask: bool, out: np.ndarray) -> None:
    for i in range(len(contact)):
        if has_mask and not mask[i]:
            continue
        out[contact[i]] += 1


def count_into(contact: np.ndarray, mask: np.ndarray | None, out: np.ndarray) -> None:
    """``out[c] += 1`` for every passing row of contact ``c``."""
    contact = _check_rows(contact, out)
    out = check_out("out", out, np.int64)
    m, has_mask = as_mask(mask, len(contact))
    _count_into(contact, m, has_mask, out)


@njit(
    [types.void(ro(I32), ro(B), B, ro(t), ro(B), B, I64, rw(F64), rw(I64)) for t in VALUE_TYPES],
    **NJIT,
)
def _agg_into(
    contact: np.ndarray,
    mask: np.ndarray,
    has_mask: bool,
    values: np.ndarray,
    valid: np.ndarray,
    has_valid: bool,
    kind: int,
    acc: np.ndarray,
    n: np.ndarray,
) -> None:
    for i in range(len(contact)):
        if has_mask and not mask[i]:
            continue
        if has_valid and not valid[i]:
            continue
        c = contact[i]
        x = np.float64(values[i])
        if kind == 0:
            acc[c] += x
        elif kind == 1:
            if n[c] == 0 or x < acc[c]:
                acc[c] = x
        elif n[c] == 0 or x > acc[c]:
            acc[c] = x
        n[c] += 1


AGG_KINDS = {"sum": 0, "min": 1, "max": 2}


@njit(
    [types.void(ro(I32), ro(B), B, ro(t), ro(B), B, B, rw(I64), rw(I64)) for t in _INT_VALUES],
    **NJIT,
)
def _int_extreme_into(
    contact: np.ndarray,
    mask: np.ndarray,
    has_mask: bool,
    values: np.ndarray,
    valid: np.ndarray,
    has_valid: bool,
    is_max: bool,
    acc: np.ndarray,
    n: np.ndarray,
) -> None:
    for i in range(len(contact)):
        if has_mask and not mask[i]:
            continue
        if has_valid and not valid[i]:
            continue
        c = contact[i]
        x = np.int64(values[i])
        if n[c] == 0 or (x > acc[c] if is_max else x < acc[c]):
            acc[c] = x
        n[c] += 1


def agg_into(
    contact: np.ndarray,
    mask: np.ndarray | None,
    values: np.ndarray,
    valid: np.ndarray | None,
    kind: str,
    acc: np.ndarray,
    n: np.ndarray,
) -> None:
    """Accumulate ``sum``/``min``/``max`` of present values into ``acc`` and
    the number of values seen into ``n`` (``n == 0``: no value).  A float64
    ``acc`` folds the values as float64; an int64 ``acc`` (``min``/``max`` of
    int-like values only) keeps them exact, beyond float64's 2**53."""
    contact = _check_rows(contact, acc)
    values = check_1d("values", values, (*_VALUE_TYPES, np.bool_), len(contact))
    exact = acc.dtype == np.int64
    acc = check_out("acc", acc, np.int64 if exact else np.float64)
    n = check_out("n", n, np.int64, len(acc))
    if kind not in AGG_KINDS:
        raise ValueError(f"unknown aggregate {kind!r}")
    if values.dtype == np.bool_:
        values = values.view(np.uint8)
    m, has_mask = as_mask(mask, len(contact))
    v, has_valid = as_valid(valid, len(contact))
    if not exact:
        _agg_into(contact, m, has_mask, values, v, has_valid, AGG_KINDS[kind], acc, n)
        return
    if kind == "sum" or values.dtype == np.float64:
        raise ValueError("an int64 acc holds the min or max of int-like values only")
    _int_extreme_into(contact, m, has_mask, values, v, has_valid, kind == "max", acc, n)


@njit([types.void(ro(I32), ro(B), B, ro(I64), B, rw(I64))], **NJIT)
def _ts_extreme_into(
    contact: np.ndarray,
    mask: np.ndarray,
    has_mask: bool,
    ts: np.ndarray,
    newest: bool,
    out: np.ndarray,
) -> None:
    for i in range(len(contact)):
        if has_mask and not mask[i]:
            continue
        c = contact[i]
        t = ts[i]
        if newest:
            if t > out[c]:
                out[c] = t
        elif t < out[c]:
            out[c] = t


def ts_extreme_into(
    contact: np.ndarray, mask: np.ndarray | None, ts: np.ndarray, newest: bool, out: np.ndarray
) -> None:
    """Newest (``out`` starts at INT64_MIN) or oldest (INT64_MAX) passing ts per contact."""
    contact = _check_rows(contact, out)
    ts = check_1d("ts", ts, (np.int64,), len(contact))
    out = check_out("out", out, np.int64)
    m, has_mask = as_mask(mask, len(contact))
    _ts_extreme_into(contact, m, has_mask, ts, newest, out)


@njit([types.void(ro(I32), ro(t), rw(I64)) for t in (I64, F64)], **NJIT)
def _distinct_counts(contact: np.ndarray, value: np.ndarray, out: np.ndarray) -> None:
    for i in range(len(contact)):
        if i == 0 or contact[i] != contact[i - 1] or value[i] != value[i - 1]:
            out[contact[i]] += 1


def distinct_counts(contact: np.ndarray, value: np.ndarray, n_contacts: int) -> np.ndarray:
    """Distinct values per contact from (contact, value) pairs of passing rows
    (any order; sorted here with ``np.lexsort``)."""
    contact = check_1d("contact", contact, (np.int32,))
    value = check_1d("value", value, (np.int64, np.float64), len(contact))
    out = np.zeros(n_contacts, dtype=np.int64)
    contact = _check_rows(contact, out)
    order = np.lexsort((value, contact))
    _distinct_counts(contact[order], value[order], out)
    return out


# ``distinct_codes`` groups the pairs by contact with a counting sort (linear,
# no comparison sort), then counts each contact's codes with a stamp per code:
# a code is new for contact c when its stamp is not c yet.  Thread t sorts its
# share of the pairs into its own slots of every contact's group, then counts
# its own range of contacts.  The phases are plain functions, run by a serial
# and a parallel kernel (a parallel kernel wakes the thread pool even for one
# chunk, which a busy machine makes costly).


@njit(**NJIT)
def _dc_count(contact: np.ndarray, lo: int, hi: int, cnt: np.ndarray) -> None:
    for i in range(lo, hi):
        cnt[contact[i]] += 1


@njit(**NJIT)
def _dc_place(
    contact: np.ndarray, code: np.ndarray, lo: int, hi: int, pos: np.ndarray, grouped: np.ndarray
) -> None:
    for i in range(lo, hi):
        c = contact[i]
        grouped[pos[c]] = code[i]
        pos[c] += 1


@njit(**NJIT)
def _dc_stamp(
    start: np.ndarray, grouped: np.ndarray, lo: int, hi: int, n_codes: int, out: np.ndarray
) -> None:
    stamp = np.full(n_codes, -1, dtype=np.int64)
    for c in range(lo, hi):
        k = 0
        for j in range(start[c], start[c + 1]):
            v = grouped[j]
            k += stamp[v] != c  # branch-free: the test is a coin flip
            stamp[v] = c
        out[c] += k


@njit(**NJIT)
def _dc_offsets(cnt: np.ndarray, start: np.ndarray, pos: np.ndarray) -> None:
    run = 0
    for c in range(cnt.shape[1]):
        start[c] = run
        for t in range(cnt.shape[0]):
            pos[t, c] = run
            run += cnt[t, c]
    start[cnt.shape[1]] = run


_DC_SIG = types.void(ro(I32), ro(I32), I64, I64, rw(I64))


@njit([_DC_SIG], **NJIT)
def _distinct_codes(
    contact: np.ndarray, code: np.ndarray, n_codes: int, n_threads: int, out: np.ndarray
) -> None:
    n = len(out)
    m = len(contact)
    cnt = np.zeros((1, n), dtype=np.int64)
    _dc_count(contact, 0, m, cnt[0])
    start = np.empty(n + 1, dtype=np.int64)
    pos = np.empty((1, n), dtype=np.int64)
    _dc_offsets(cnt, start, pos)
    grouped = np.empty(m, dtype=np.int32)
    _dc_place(contact, code, 0, m, pos[0], grouped)
    _dc_stamp(start, grouped, 0, n, n_codes, out)


@njit([_DC_SIG], **PARALLEL)
def _distinct_codes_par(
    contact: np.ndarray, code: np.ndarray, n_codes: int, n_threads: int, out: np.ndarray
) -> None:
    n = len(out)
    m = len(contact)
    cnt = np.zeros((n_threads, n), dtype=np.int64)
    for t in prange(n_threads):
        _dc_count(contact, m * t // n_threads, m * (t + 1) // n_threads, cnt[t])
    start = np.empty(n + 1, dtype=np.int64)
    pos = np.empty((n_threads, n), dtype=np.int64)
    _dc_offsets(cnt, start, pos)
    grouped = np.empty(m, dtype=np.int32)
    for t in prange(n_threads):
        _dc_place(contact, code, m * t // n_threads, m * (t + 1) // n_threads, pos[t], grouped)
    for t in prange(n_threads):
        _dc_stamp(start, grouped, n * t // n_threads, n * (t + 1) // n_threads, n_codes, out)


def distinct_codes(contact: np.ndarray, code: np.ndarray, n_contacts: int) -> np.ndarray:
    """``distinct_counts`` for small non-negative integer values (dictionary
    codes): linear in the pairs plus the contacts and the codes, no sort."""
    contact = check_1d("contact", contact, (np.int32,))
    code = check_1d("code", code, (np.int32,), len(contact))
    out = np.zeros(n_contacts, dtype=np.int64)
    contact = _check_rows(contact, out)
    n_codes = 0
    if len(code):
        if code.min() < 0:
            raise ValueError("codes must be non-negative")
        n_codes = int(code.max()) + 1
    threads = numba.get_num_threads() if len(contact) >= PARALLEL_MIN_ROWS else 1
    kernel = _distinct_codes_par if threads > 1 else _distinct_codes
    kernel(contact, code, n_codes, threads, out)
    return out
