"""Per-contact reductions: scatter the rows that pass a filter into arrays
over the contact universe.  Each ``*_into`` accumulates, so a condition that
reads several partitions calls it once per partition slice."""

from __future__ import annotations

import numpy as np
from numba import njit, types

from audience.compiler.kernels._checks import as_mask, as_valid, check_1d, check_out
from audience.compiler.kernels.config import F64, I32, I64, NJIT, VALUE_TYPES, B, ro, rw

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min
_VALUE_TYPES = (np.int64, np.float64, np.int32, np.uint8)


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


def agg_into(
    contact: np.ndarray,
    mask: np.ndarray | None,
    values: np.ndarray,
    valid: np.ndarray | None,
    kind: str,
    acc: np.ndarray,
    n: np.ndarray,
) -> None:
    """Accumulate ``sum``/``min``/``max`` of present values (as float64) into
    ``acc`` and the number of values seen into ``n`` (``n == 0``: no value)."""
    contact = _check_rows(contact, acc)
    values = check_1d("values", values, (*_VALUE_TYPES, np.bool_), len(contact))
    acc = check_out("acc", acc, np.float64)
    n = check_out("n", n, np.int64, len(acc))
    if kind not in AGG_KINDS:
        raise ValueError(f"unknown aggregate {kind!r}")
    if values.dtype == np.bool_:
        values = values.view(np.uint8)
    m, has_mask = as_mask(mask, len(contact))
    v, has_valid = as_valid(valid, len(contact))
    _agg_into(contact, m, has_mask, values, v, has_valid, AGG_KINDS[kind], acc, n)


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
