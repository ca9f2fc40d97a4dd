"""Reductions ("lanes") over runs of event rows, per contact.

The rows are a partition's, or a selection of them (``typeindex``: the rows
of some types, as a partition of their own).  A lane is a window (a range of
rows), an optional row mask and one reduction; the lanes over one
(selected) partition run in one call, while its rows are hot, and no
per-row mask is ever built for the type or the window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange, types

from audience.compiler.kernels._checks import check_1d
from audience.compiler.kernels.config import F64, I32, I64, NJIT, PARALLEL, B, ro

# lane kinds
COUNT, SUM, MIN, MAX, NEWEST, OLDEST = 0, 1, 2, 3, 4, 5
KINDS = {"count": COUNT, "sum": SUM, "min": MIN, "max": MAX, "newest": NEWEST, "oldest": OLDEST}


@njit(**NJIT)
def _lane(
    lo: int,
    hi: int,
    kd: int,
    r: int,
    contact: np.ndarray,
    ts: np.ndarray,
    has_mask: bool,
    mask_base: int,
    masks: np.ndarray,
    val_base: int,
    vals: np.ndarray,
    counts: np.ndarray,
    accs: np.ndarray,
    tss: np.ndarray,
    buf: np.ndarray,
) -> int:
    """Positions [lo, hi) of one lane into its slot ``r``; the number of rows
    whose contact is outside the outputs (skipped: the wrapper raises).

    A mask is applied first by compaction (every position is written, the
    cursor advances by the mask bit): with no data-dependent branch this is
    several times faster than testing the mask in the reduction loop."""
    width = np.uint32(counts.shape[1])
    n = hi - lo
    if has_mask:
        m = masks.view(np.uint8)
        n = 0
        for i in range(lo, hi):
            buf[n] = i
            n += int(m[i - mask_base])
    bad = 0
    for j in range(n):
        i = buf[j] if has_mask else lo + j
        c = contact[i]
        if np.uint32(c) >= width:
            bad += 1
            continue
        if kd == 0:
            counts[r, c] += 1
        elif kd <= 3:
            x = vals[i - val_base]
            if kd == 1:
                accs[r, c] += x
            elif kd == 2:
                if counts[r, c] == 0 or x < accs[r, c]:
                    accs[r, c] = x
            elif counts[r, c] == 0 or x > accs[r, c]:
                accs[r, c] = x
            counts[r, c] += 1
        elif kd == 4:
            if ts[i] > tss[r, c]:
                tss[r, c] = ts[i]
        elif ts[i] < tss[r, c]:
            tss[r, c] = ts[i]
    return bad


def _signature(dims: int) -> Any:
    out_i = types.Array(I64, dims, "C")
    out_f = types.Array(F64, dims, "C")
    return I64(
        ro(I32), ro(I64), ro(I64), ro(I64), ro(I64), ro(I64),
        ro(B), ro(I64), ro(B), ro(I64), ro(F64), out_i, out_f, out_i,
    )  # fmt: skip


@njit([_signature(2)], **NJIT)
def _scan_lanes(
    contact: np.ndarray,
    ts: np.ndarray,
    lane_lo: np.ndarray,
    lane_hi: np.ndarray,
    kind: np.ndarray,
    slot: np.ndarray,
    has_mask: np.ndarray,
    mask_base: np.ndarray,
    masks: np.ndarray,
    val_base: np.ndarray,
    vals: np.ndarray,
    counts: np.ndarray,
    accs: np.ndarray,
    tss: np.ndarray,
) -> int:
    widest = 0
    for k in range(len(kind)):
        if has_mask[k]:
            widest = max(widest, lane_hi[k] - lane_lo[k])
    buf = np.empty(widest, dtype=np.int32)
    bad = 0
    for k in range(len(kind)):
        bad += _lane(
            lane_lo[k], lane_hi[k], kind[k], slot[k], contact, ts, has_mask[k], mask_base[k],
            masks, val_base[k], vals, counts, accs, tss, buf,
        )  # fmt: skip
    return bad


@njit([_signature(3)], **PARALLEL)
def _scan_lanes_par(
    contact: np.ndarray,
    ts: np.ndarray,
    lane_lo: np.ndarray,
    lane_hi: np.ndarray,
    kind: np.ndarray,
    slot: np.ndarray,
    has_mask: np.ndarray,
    mask_base: np.ndarray,
    masks: np.ndarray,
    val_base: np.ndarray,
    vals: np.ndarray,
    counts: np.ndarray,
    accs: np.ndarray,
    tss: np.ndarray,
) -> int:
    # thread t takes the t-th slice of every lane's positions and folds it into
    # its own outputs (counts[t], ...): no shared writes; the caller merges them
    n_threads = counts.shape[0]
    widest = 0
    for k in range(len(kind)):
        if has_mask[k]:
            widest = max(widest, (lane_hi[k] - lane_lo[k]) // n_threads + 1)
    bad = np.zeros(n_threads, dtype=np.int64)
    for t in prange(n_threads):
        buf = np.empty(widest, dtype=np.int32)
        for k in range(len(kind)):
            span = lane_hi[k] - lane_lo[k]
            a = lane_lo[k] + span * t // n_threads
            b = lane_lo[k] + span * (t + 1) // n_threads
            bad[t] += _lane(
                a, b, kind[k], slot[k], contact, ts, has_mask[k], mask_base[k], masks,
                val_base[k], vals, counts[t], accs[t], tss[t], buf,
            )  # fmt: skip
    return int(bad.sum())


def scan_lanes(
    contact: np.ndarray,
    ts: np.ndarray,
    ranges: list[tuple[int, int]],
    kind: np.ndarray,
    slot: np.ndarray,
    has_mask: np.ndarray,
    mask_base: np.ndarray,
    masks: np.ndarray,
    val_base: np.ndarray,
    vals: np.ndarray,
    counts: np.ndarray,
    accs: np.ndarray,
    tss: np.ndarray,
) -> None:
    """Accumulate every lane ``k`` over the rows ``i`` of ``ranges[k]`` whose
    mask, when ``has_mask[k]``, is set at ``masks[i - mask_base[k]]``.  Lane
    kinds (``KINDS``): ``count`` adds 1 to ``counts[slot[k], c]``;
    ``sum``/``min``/``max`` fold ``vals[i - val_base[k]]`` into
    ``accs[slot[k], c]`` and count the values in ``counts[slot[k], c]``;
    ``newest``/``oldest`` keep the extreme ts in ``tss[slot[k], c]``.  Every
    index is checked here, so the kernel never reads or writes out of bounds.

    With 3-d outputs ``(threads, slots, contacts)``, the positions are split
    between that many threads, each folding into its own outputs: merge them
    with ``merge_threads``."""
    n = len(contact)
    contact = check_1d("contact", contact, (np.int32,))
    ts = check_1d("ts", ts, (np.int64,), n)
    k_n = len(ranges)
    kind = check_1d("kind", kind, (np.int64,), k_n)
    slot = check_1d("slot", slot, (np.int64,), k_n)
    has_mask = check_1d("has_mask", has_mask, (np.bool_,), k_n)
    mask_base = check_1d("mask_base", mask_base, (np.int64,), k_n)
    masks = check_1d("masks", masks, (np.bool_,))
    val_base = check_1d("val_base", val_base, (np.int64,), k_n)
    vals = check_1d("vals", vals, (np.float64,))
    dims = _check_outputs(counts, accs, tss)
    n_out = {COUNT: counts, SUM: accs, MIN: accs, MAX: accs, NEWEST: tss, OLDEST: tss}
    for k, (a, b) in enumerate(ranges):
        if not 0 <= a <= b <= n:
            raise ValueError(f"lane {k}: positions [{a}, {b}) outside the {n} rows")
        kd = int(kind[k])
        if kd not in n_out:
            raise ValueError(f"lane {k}: unknown kind {kd}")
        for out in [n_out[kd]] + ([counts] if SUM <= kd <= MAX else []):
            if not 0 <= slot[k] < out.shape[-2]:
                raise ValueError(f"lane {k}: output slot {slot[k]} out of range")
        if a == b:
            continue
        first, last = a, b - 1
        if has_mask[k] and not 0 <= first - mask_base[k] <= last - mask_base[k] < len(masks):
            raise ValueError(f"lane {k}: mask does not cover its rows")
        if SUM <= kd <= MAX and not 0 <= first - val_base[k] <= last - val_base[k] < len(vals):
            raise ValueError(f"lane {k}: values do not cover its rows")
    lane_lo = np.array([a for a, _ in ranges], dtype=np.int64)
    lane_hi = np.array([b for _, b in ranges], dtype=np.int64)
    kernel = _scan_lanes
    if dims == 3:
        if counts.shape[0] == 1:
            counts, accs, tss = counts[0], accs[0], tss[0]
        else:
            kernel = _scan_lanes_par
    bad = kernel(
        contact, ts, lane_lo, lane_hi, kind, slot,
        has_mask, mask_base, masks, val_base, vals, counts, accs, tss,
    )  # fmt: skip
    if bad:
        raise ValueError(f"{bad} rows have a contact index outside the output arrays")


def _check_outputs(counts: np.ndarray, accs: np.ndarray, tss: np.ndarray) -> int:
    outs = (("counts", counts, np.int64), ("accs", accs, np.float64), ("tss", tss, np.int64))
    dims = counts.ndim
    for name, out, dtype in outs:
        if out.dtype != dtype or out.ndim not in (2, 3) or not out.flags.c_contiguous:
            raise ValueError(
                f"{name} must be a C-contiguous 2-d or 3-d {np.dtype(dtype).name} array"
            )
        if not out.flags.writeable:
            raise ValueError(f"{name} must be writable")
        if out.ndim != dims or out.shape[-1] != counts.shape[-1] or out.shape[0] != counts.shape[0]:
            raise ValueError("counts, accs and tss must have the same threads and contacts")
    return dims


def merge_threads(
    agg_kinds: list[int], ts_kinds: list[int], counts: np.ndarray, accs: np.ndarray, tss: np.ndarray
) -> None:
    """Fold threads 1.. of 3-d outputs into thread 0.  ``agg_kinds[r]`` is the
    kind of the lane of ``accs`` slot ``r`` (its value count: ``counts`` slot
    ``r``), ``ts_kinds[r]`` that of ``tss`` slot ``r``."""
    if len(agg_kinds) != accs.shape[1] or len(ts_kinds) != tss.shape[1]:
        raise ValueError("one kind per aggregate and per ts slot")
    for t in range(1, counts.shape[0]):
        for r, kd in enumerate(agg_kinds):
            a0, a1 = accs[0, r], accs[t, r]
            if kd == SUM:
                a0 += a1
                continue
            n0, n1 = counts[0, r], counts[t, r]
            better = (a1 < a0) if kd == MIN else (a1 > a0)
            np.copyto(a0, a1, where=(n1 > 0) & ((n0 == 0) | better))
        counts[0] += counts[t]
        for r, kd in enumerate(ts_kinds):
            pick = np.maximum if kd == NEWEST else np.minimum
            pick(tss[0, r], tss[t, r], out=tss[0, r])
