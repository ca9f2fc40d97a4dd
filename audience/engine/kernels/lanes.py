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
from numba import prange, types

from audience.engine.kernels._checks import check_1d
from audience.engine.kernels._prefetch import prefetch
from audience.engine.kernels.config import F64, I32, I64, NJIT, PARALLEL, U8, B, njit, ro, rw

# lane kinds; IMIN/IMAX are min/max of int-like values, kept exact in int64
# (float64 holds integers exactly only up to 2**53); EXISTS only flags the
# contacts with a row, in a byte per contact (``did X``: no count needed);
# TOTAL is a sum whose values are not counted (``sum(x) > v`` needs no count:
# a sum over no events is 0): at millions of contacts, the count array cost
# its fill and a cache miss per row.  COUNT8 counts in a byte per contact
# too (a ``flags`` slot), saturating at ``BYTE_MAX``: for a count only
# compared with bounds below that (``at least 50 times``), the array is an
# eighth of an int64 one, so its scattered increments stay in the cache
COUNT, SUM, MIN, MAX, NEWEST, OLDEST, IMIN, IMAX, EXISTS, TOTAL = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
COUNT8 = 10
BYTE_MAX = 255
# a scattered count prefetches the contact this many rows ahead
AHEAD = 16
KINDS = {
    "count": COUNT,
    "sum": SUM,
    "min": MIN,
    "max": MAX,
    "newest": NEWEST,
    "oldest": OLDEST,
    "imin": IMIN,
    "imax": IMAX,
    "exists": EXISTS,
    "total": TOTAL,
    "count8": COUNT8,
}
_EMPTY_I64 = np.zeros(0, dtype=np.int64)
_EMPTY_I32 = np.zeros(0, dtype=np.int32)


def is_agg(kind: int) -> bool:
    """Whether lanes of ``kind`` fold values (and count them in ``counts``)."""
    return SUM <= kind <= MAX or kind in (IMIN, IMAX)


def folds(kind: int) -> bool:
    """Whether lanes of ``kind`` fold values (``is_agg``, and ``total``)."""
    return is_agg(kind) or kind == TOTAL


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
    has_pos: bool,
    positions: np.ndarray,
    pos_contact: np.ndarray,
    val_base: int,
    vals: np.ndarray,
    ivals: np.ndarray,
    counts: np.ndarray,
    accs: np.ndarray,
    tss: np.ndarray,
    iaccs: np.ndarray,
    flags: np.ndarray,
    buf: np.ndarray,
) -> int:
    """Rows [lo, hi) of one lane (with ``has_pos``: the rows
    ``positions[lo:hi]``, whose contacts are ``pos_contact[lo:hi]``: read in
    order, not gathered) into its slot ``r``; the number of rows whose
    contact is outside the outputs (skipped: the wrapper raises).

    A mask is applied first by compaction (every position is written, the
    cursor advances by the mask bit): with no data-dependent branch this is
    several times faster than testing the mask in the reduction loop."""
    width = np.uint32(counts.shape[1])
    if has_pos:
        return _lane_pos(
            lo, hi, kd, r, has_mask, mask_base, masks, positions, pos_contact, val_base, vals,
            ivals, ts, counts, accs, tss, iaccs, flags, buf,
        )  # fmt: skip
    n = hi - lo
    if has_mask:
        m = masks.view(np.uint8)
        n = 0
        for i in range(lo, hi):
            buf[n] = i
            n += int(m[i - mask_base])
    # one loop per kind: a kind test inside the row loop slowed every lane
    bad = 0
    if kd == 0:
        for j in range(n):
            i = buf[j] if has_mask else lo + j
            c = contact[i]
            if np.uint32(c) >= width:
                bad += 1
                continue
            counts[r, c] += 1
    elif kd == 4:
        for j in range(n):
            i = buf[j] if has_mask else lo + j
            c = contact[i]
            if np.uint32(c) >= width:
                bad += 1
                continue
            if ts[i] > tss[r, c]:
                tss[r, c] = ts[i]
    elif kd == 5:
        for j in range(n):
            i = buf[j] if has_mask else lo + j
            c = contact[i]
            if np.uint32(c) >= width:
                bad += 1
                continue
            if ts[i] < tss[r, c]:
                tss[r, c] = ts[i]
    elif kd == 8:
        for j in range(n):
            i = buf[j] if has_mask else lo + j
            c = contact[i]
            if np.uint32(c) >= width:
                bad += 1
                continue
            flags[r, c] = 1
    elif kd == 10:
        for j in range(n):
            if j + AHEAD < n:  # (``_prefetch``: the writes are scattered)
                ahead = contact[buf[j + AHEAD] if has_mask else lo + j + AHEAD]
                if np.uint32(ahead) < width:
                    prefetch(flags, r, ahead)
            i = buf[j] if has_mask else lo + j
            c = contact[i]
            if np.uint32(c) >= width:
                bad += 1
                continue
            v = flags[r, c]
            # saturates with no branch: a contact past the cap can have most
            # of the rows (a branch mispredicted on them took twice as long)
            flags[r, c] = v + (v != BYTE_MAX)
    elif kd == 1:
        for j in range(n):
            i = buf[j] if has_mask else lo + j
            c = contact[i]
            if np.uint32(c) >= width:
                bad += 1
                continue
            accs[r, c] += vals[i - val_base]
            counts[r, c] += 1
    elif kd == 9:
        for j in range(n):
            i = buf[j] if has_mask else lo + j
            c = contact[i]
            if np.uint32(c) >= width:
                bad += 1
                continue
            accs[r, c] += vals[i - val_base]
    elif kd == 2 or kd == 3:
        for j in range(n):
            i = buf[j] if has_mask else lo + j
            c = contact[i]
            if np.uint32(c) >= width:
                bad += 1
                continue
            x = vals[i - val_base]
            if counts[r, c] == 0 or (x < accs[r, c] if kd == 2 else x > accs[r, c]):
                accs[r, c] = x
            counts[r, c] += 1
    else:
        for j in range(n):
            i = buf[j] if has_mask else lo + j
            c = contact[i]
            if np.uint32(c) >= width:
                bad += 1
                continue
            y = ivals[i - val_base]
            if counts[r, c] == 0 or (y < iaccs[r, c] if kd == 6 else y > iaccs[r, c]):
                iaccs[r, c] = y
            counts[r, c] += 1
    return bad


@njit(**NJIT)
def _lane_pos(
    lo: int,
    hi: int,
    kd: int,
    r: int,
    has_mask: bool,
    mask_base: int,
    masks: np.ndarray,
    positions: np.ndarray,
    pos_contact: np.ndarray,
    val_base: int,
    vals: np.ndarray,
    ivals: np.ndarray,
    ts: np.ndarray,
    counts: np.ndarray,
    accs: np.ndarray,
    tss: np.ndarray,
    iaccs: np.ndarray,
    flags: np.ndarray,
    buf: np.ndarray,
) -> int:
    """``_lane`` over given rows ``positions[lo:hi]`` and their contacts."""
    width = np.uint32(counts.shape[1])
    n = hi - lo
    if has_mask:
        m = masks.view(np.uint8)
        n = 0
        for j in range(lo, hi):
            buf[n] = j
            n += int(m[positions[j] - mask_base])
    bad = 0
    if kd == 10:  # its own loop, as in ``_lane``: a byte count is often the whole pass
        for q in range(n):
            if q + AHEAD < n:
                ahead = pos_contact[buf[q + AHEAD] if has_mask else lo + q + AHEAD]
                if np.uint32(ahead) < width:
                    prefetch(flags, r, ahead)
            c = pos_contact[buf[q] if has_mask else lo + q]
            if np.uint32(c) >= width:
                bad += 1
                continue
            v = flags[r, c]
            flags[r, c] = v + (v != BYTE_MAX)
        return bad
    for q in range(n):
        j = buf[q] if has_mask else lo + q
        i = positions[j]
        c = pos_contact[j]
        if np.uint32(c) >= width:
            bad += 1
            continue
        if kd == 8:
            flags[r, c] = 1
        elif kd == 0:
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
        elif kd == 5:
            if ts[i] < tss[r, c]:
                tss[r, c] = ts[i]
        elif kd == 9:
            accs[r, c] += vals[i - val_base]
        else:
            y = ivals[i - val_base]
            if counts[r, c] == 0 or (y < iaccs[r, c] if kd == 6 else y > iaccs[r, c]):
                iaccs[r, c] = y
            counts[r, c] += 1
    return bad


def _signature(dims: int) -> Any:
    out_i = types.Array(I64, dims, "C")
    out_f = types.Array(F64, dims, "C")
    out_b = types.Array(U8, dims, "C")
    return I64(
        ro(I32), ro(I64), ro(I64), ro(I64), ro(I64), ro(I64),
        ro(B), ro(I64), ro(B), ro(B), ro(I32), ro(I32), ro(I64), ro(F64), ro(I64),
        out_i, out_f, out_i, out_i, out_b,
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
    has_pos: np.ndarray,
    positions: np.ndarray,
    pos_contact: np.ndarray,
    val_base: np.ndarray,
    vals: np.ndarray,
    ivals: np.ndarray,
    counts: np.ndarray,
    accs: np.ndarray,
    tss: np.ndarray,
    iaccs: np.ndarray,
    flags: np.ndarray,
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
            masks, has_pos[k], positions, pos_contact, val_base[k], vals, ivals,
            counts, accs, tss, iaccs, flags, buf,
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
    has_pos: np.ndarray,
    positions: np.ndarray,
    pos_contact: np.ndarray,
    val_base: np.ndarray,
    vals: np.ndarray,
    ivals: np.ndarray,
    counts: np.ndarray,
    accs: np.ndarray,
    tss: np.ndarray,
    iaccs: np.ndarray,
    flags: np.ndarray,
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
                has_pos[k], positions, pos_contact, val_base[k], vals, ivals,
                counts[t], accs[t], tss[t], iaccs[t], flags[t], buf,
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
    ivals: np.ndarray | None = None,
    iaccs: np.ndarray | None = None,
    has_pos: np.ndarray | None = None,
    positions: np.ndarray | None = None,
    flags: np.ndarray | None = None,
    pos_contact: np.ndarray | None = None,
) -> None:
    """Accumulate every lane ``k`` over the rows ``i`` of ``ranges[k]`` (when
    ``has_pos[k]``: over the rows ``positions[ranges[k]]``, a row selection
    made ahead, whose contacts are ``pos_contact[ranges[k]]``) whose mask,
    when ``has_mask[k]``, is set at ``masks[i - mask_base[k]]``.  Lane
    kinds (``KINDS``): ``count`` adds 1 to ``counts[slot[k], c]``;
    ``sum``/``min``/``max`` fold ``vals[i - val_base[k]]`` into
    ``accs[slot[k], c]`` and count the values in ``counts[slot[k], c]``;
    ``imin``/``imax`` do the same with the int64 ``ivals`` into the int64
    ``iaccs`` (exact: no float64 rounding); ``newest``/``oldest`` keep the
    extreme ts in ``tss[slot[k], c]``; ``exists`` sets ``flags[slot[k], c]``
    (uint8) to 1; ``count8`` adds 1 to it up to ``BYTE_MAX``; ``total`` is
    ``sum`` with no value count.  Every index is checked here, so the kernel
    never reads or writes out of bounds.

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
    ivals = _EMPTY_I64 if ivals is None else check_1d("ivals", ivals, (np.int64,))
    if has_pos is None:
        has_pos = np.zeros(k_n, dtype=np.bool_)
    has_pos = check_1d("has_pos", has_pos, (np.bool_,), k_n)
    positions = _EMPTY_I32 if positions is None else check_1d("positions", positions, (np.int32,))
    if iaccs is None:
        iaccs = np.zeros(accs.shape, dtype=np.int64)
    if flags is None:
        flags = np.zeros((*counts.shape[:-2], 0, counts.shape[-1]), dtype=np.uint8)
    dims = _check_outputs(counts, accs, tss, iaccs, flags)
    n_out = {
        COUNT: counts, SUM: accs, MIN: accs, MAX: accs,
        NEWEST: tss, OLDEST: tss, IMIN: iaccs, IMAX: iaccs, EXISTS: flags, TOTAL: accs,
        COUNT8: flags,
    }  # fmt: skip
    for k, (a, b) in enumerate(ranges):
        limit = len(positions) if has_pos[k] else n
        if not 0 <= a <= b <= limit:
            raise ValueError(f"lane {k}: positions [{a}, {b}) outside the {limit} rows")
        kd = int(kind[k])
        if kd not in n_out:
            raise ValueError(f"lane {k}: unknown kind {kd}")
        for out in [n_out[kd]] + ([counts] if is_agg(kd) else []):
            if not 0 <= slot[k] < out.shape[-2]:
                raise ValueError(f"lane {k}: output slot {slot[k]} out of range")
            if out.shape[-1] != counts.shape[-1]:
                raise ValueError(f"lane {k}: its output has no column per contact")
        if a == b:
            continue
        first, last = a, b - 1
        if has_pos[k]:
            rows = positions[a:b]
            first, last = int(rows.min()), int(rows.max())
            if first < 0 or last >= n:
                raise ValueError(f"lane {k}: its rows are outside the {n} rows")
        if has_mask[k] and not 0 <= first - mask_base[k] <= last - mask_base[k] < len(masks):
            raise ValueError(f"lane {k}: mask does not cover its rows")
        src = vals if SUM <= kd <= MAX or kd == TOTAL else ivals
        if folds(kd) and not 0 <= first - val_base[k] <= last - val_base[k] < len(src):
            raise ValueError(f"lane {k}: values do not cover its rows")
    if pos_contact is None:
        pos_contact = contact[positions]  # every used position is checked above
    pos_contact = check_1d("pos_contact", pos_contact, (np.int32,), len(positions))
    lane_lo = np.array([a for a, _ in ranges], dtype=np.int64)
    lane_hi = np.array([b for _, b in ranges], dtype=np.int64)
    kernel = _scan_lanes
    if dims == 3:
        if counts.shape[0] == 1:
            counts, accs, tss, iaccs, flags = counts[0], accs[0], tss[0], iaccs[0], flags[0]
        else:
            kernel = _scan_lanes_par
    bad = kernel(
        contact, ts, lane_lo, lane_hi, kind, slot, has_mask, mask_base, masks,
        has_pos, positions, pos_contact, val_base, vals, ivals, counts, accs, tss, iaccs, flags,
    )  # fmt: skip
    if bad:
        raise ValueError(f"{bad} rows have a contact index outside the output arrays")


def _check_outputs(
    counts: np.ndarray, accs: np.ndarray, tss: np.ndarray, iaccs: np.ndarray, flags: np.ndarray
) -> int:
    outs = (
        ("counts", counts, np.int64),
        ("accs", accs, np.float64),
        ("tss", tss, np.int64),
        ("iaccs", iaccs, np.int64),
        ("flags", flags, np.uint8),
    )
    dims = counts.ndim
    for name, out, dtype in outs:
        if out.dtype != dtype or out.ndim not in (2, 3) or not out.flags.c_contiguous:
            raise ValueError(
                f"{name} must be a C-contiguous 2-d or 3-d {np.dtype(dtype).name} array"
            )
        if not out.flags.writeable:
            raise ValueError(f"{name} must be writable")
        # an output no lane writes may have no contacts (scan_lanes checks
        # that the outputs the lanes write have them all)
        width = out.shape[-1] in (counts.shape[-1], 0)
        if out.ndim != dims or not width or out.shape[0] != counts.shape[0]:
            raise ValueError("the outputs must have the same threads and contacts")
    if iaccs.shape[:-1] != accs.shape[:-1]:
        raise ValueError(
            "iaccs must have the shape of accs, or no contacts (they share the aggregate slots)"
        )
    return dims


def merge_threads(
    agg_kinds: list[int],
    ts_kinds: list[int],
    counts: np.ndarray,
    accs: np.ndarray,
    tss: np.ndarray,
    iaccs: np.ndarray | None = None,
    flags: np.ndarray | None = None,
    flag_kinds: list[int] | None = None,
) -> None:
    """Fold threads 1.. of 3-d outputs into thread 0.
    ``agg_kinds[r]`` is the kind of the lane of aggregate slot ``r`` (``accs``,
    or ``iaccs`` for ``imin``/``imax``; its value count: ``counts`` slot ``r``,
    except for ``total``, whose slots come after the counted ones), ``ts_kinds[r]``
    that of ``tss`` slot ``r``, ``flag_kinds[r]`` that of ``flags`` slot ``r``
    (``exists`` or ``count8``; None: every slot ``exists``)."""
    if len(agg_kinds) != accs.shape[1] or len(ts_kinds) != tss.shape[1]:
        raise ValueError("one kind per aggregate and per ts slot")
    if flags is not None and flag_kinds is None:
        flag_kinds = [EXISTS] * flags.shape[1]
    if flags is not None and (
        flag_kinds is None
        or len(flag_kinds) != flags.shape[1]
        or any(kd not in (EXISTS, COUNT8) for kd in flag_kinds)
    ):
        raise ValueError("one kind, exists or count8, per flags slot")
    if any(kd in (IMIN, IMAX) for kd in agg_kinds) and (
        iaccs is None or iaccs.shape[:-1] != accs.shape[:-1] or iaccs.shape[-1] != counts.shape[-1]
    ):
        raise ValueError("int aggregates need iaccs with the slots of accs and every contact")
    if any(kd in (SUM, MIN, MAX, TOTAL) for kd in agg_kinds) and accs.shape[-1] != counts.shape[-1]:
        raise ValueError("float aggregates need accs with every contact")
    for t in range(1, counts.shape[0]):
        for r, kd in enumerate(agg_kinds):
            if kd in (SUM, TOTAL):
                accs[0, r] += accs[t, r]
                continue
            out = iaccs if kd in (IMIN, IMAX) and iaccs is not None else accs
            a0, a1 = out[0, r], out[t, r]
            n0, n1 = counts[0, r], counts[t, r]
            better = (a1 < a0) if kd in (MIN, IMIN) else (a1 > a0)
            np.copyto(a0, a1, where=(n1 > 0) & ((n0 == 0) | better))
        counts[0] += counts[t]
        if flags is not None and flag_kinds is not None:
            for r, kd in enumerate(flag_kinds):
                if kd == EXISTS:
                    flags[0, r] |= flags[t, r]
                else:
                    _add_saturated(flags[0, r], flags[t, r])
        for r, kd in enumerate(ts_kinds):
            pick = np.maximum if kd == NEWEST else np.minimum
            pick(tss[0, r], tss[t, r], out=tss[0, r])


@njit([types.void(rw(U8), ro(U8))], **NJIT)
def _add_saturated(into: np.ndarray, more: np.ndarray) -> None:
    """``into = min(into + more, BYTE_MAX)`` for uint8 counts, in place and
    without overflow: what ``into`` lacks to the cap bounds what is added."""
    for c in range(len(into)):
        into[c] += min(more[c], BYTE_MAX - into[c])
