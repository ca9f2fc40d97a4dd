"""Every scan of a program in one pass over the partitions.

The scan steps of a program read the same partitions (a segment's rules
mostly differ in type, predicate and window only), so each partition is
read once for all of them: every (scan, reduction) becomes a lane of
``kernels.lanes.scan_lanes``, which reads ``type`` and ``contact`` once and
feeds each row to the lanes whose types, window and predicate it passes.
``count_distinct`` lanes collect their (contact, value) pairs in the same
partition loop and are counted at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from audience.compiler import plan as p
from audience.compiler.context import EvalContext
from audience.compiler.kernels import filters, lanes, reduce
from audience.compiler.kernels.config import PARALLEL_MIN_ROWS
from audience.compiler.predicates import event_field, event_mask
from audience.compiler.scan import Reduction, filter_range, list_elements, row_range
from audience.compiler.typeindex import dense, type_rows
from audience.runtime.snapshot import Partition

ScanResult = dict[Reduction, dict[str, np.ndarray]]
_AGG_KINDS = {"sum": lanes.SUM, "avg": lanes.SUM, "min": lanes.MIN, "max": lanes.MAX}
_EMPTY_F64 = np.zeros(0, dtype=np.float64)


@dataclass
class _Scan:
    """One scan step: its filter resolved for this evaluation."""

    filter: p.RowFilter
    reductions: tuple[Reduction, ...]
    lo: int
    hi: int
    type_lut: np.ndarray | None  # None: any type
    empty: bool  # none of its types exists in the snapshot

    @property
    def key(self) -> bytes | None:
        return None if self.type_lut is None else self.type_lut.tobytes()


@dataclass
class _Lane:
    scan: int
    red: Reduction
    kind: int
    slot: int


@dataclass
class _Distinct:
    scan: int
    red: Reduction
    pairs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    codes: bool = True  # every value seen so far is a dictionary code


def _type_lut(ctx: EvalContext, types: tuple[str, ...] | None) -> tuple[np.ndarray | None, bool]:
    if types is None:
        return None, False
    et = ctx.snapshot.event_types
    lut = np.zeros(len(et), dtype=np.bool_)
    for t in types:
        code = et.code(t)
        if code >= 0:
            lut[code] = True
    return lut, not lut.any()


class FusedScans:
    """The scan steps of one program (``{step index: (filter, reductions)}``),
    run together on the first request for any of them."""

    def __init__(self, scans: Mapping[int, tuple[p.RowFilter, tuple[Reduction, ...]]]) -> None:
        self.steps = dict(scans)
        self.results: dict[int, ScanResult] | None = None
        self.first: int | None = None

    def result(self, step: int, ctx: EvalContext) -> ScanResult:
        if self.results is None:
            self.first = step
            order = sorted(self.steps)
            outs = run_scans(ctx, [self.steps[i] for i in order])
            self.results = dict(zip(order, outs, strict=True))
        elif step != self.first:
            ctx.stats["fused_into"] = self.first
        return self.results[step]


def run_scans(
    ctx: EvalContext, scans: list[tuple[p.RowFilter, tuple[Reduction, ...]]]
) -> list[ScanResult]:
    """Each scan's reductions (as ``scan.run_scan`` gives them), computed in
    one pass over the partitions.  Stats (partitions read/skipped) go to
    ``ctx.stats``, once for the whole pass."""
    n = ctx.snapshot.n_contacts
    resolved: list[_Scan] = []
    for flt, reds in scans:
        lo, hi = filter_range(ctx, flt)
        lut, empty = _type_lut(ctx, flt.types)
        resolved.append(_Scan(flt, reds, lo, hi, lut, empty))
    lane_list, distinct = _plan_lanes(resolved)
    # lanes over the same types read the same selected rows: one pass per group
    by_types: dict[bytes | None, list[_Lane]] = {}
    for ln in lane_list:
        by_types.setdefault(resolved[ln.scan].key, []).append(ln)
    groups = list(by_types.values())
    parts = [
        (part, [(0, 0) if s.empty else row_range(part, s.lo, s.hi) for s in resolved])
        for part in ctx.snapshot.partitions
    ]
    rows = sum(max(b for _, b in rs) - min(a for a, _ in rs) for _, rs in parts if resolved)
    threads = numba.get_num_threads() if rows >= PARALLEL_MIN_ROWS else 1
    agg_kinds = [ln.kind for ln in lane_list if lanes.SUM <= ln.kind <= lanes.MAX]
    ts_kinds = [ln.kind for ln in lane_list if ln.kind >= lanes.NEWEST]
    n_cnt = sum(1 for ln in lane_list if ln.kind == lanes.COUNT)
    counts = np.zeros((threads, len(agg_kinds) + n_cnt, n), dtype=np.int64)
    accs = np.zeros((threads, len(agg_kinds), n), dtype=np.float64)
    tss = np.empty((threads, len(ts_kinds), n), dtype=np.int64)
    for r, kd in enumerate(ts_kinds):
        tss[:, r] = reduce.INT64_MIN if kd == lanes.NEWEST else reduce.INT64_MAX
    stats = ctx.stats
    stats["partitions_read"] = 0
    stats["partitions_skipped"] = 0
    live = [s for s in resolved if not s.empty]
    if live:
        stats["range"] = [min(s.lo for s in live), max(s.hi for s in live)]
    for part, ranges in parts:
        if all(a >= b for a, b in ranges):
            stats["partitions_skipped"] += 1
            continue
        stats["partitions_read"] += 1
        sources = _sources(part, resolved, ranges)
        masks = _masks(ctx, resolved, sources)
        for group in groups:
            _run_lanes(ctx, resolved, sources, masks, group, counts, accs, tss)
        for d in distinct:
            _collect_pairs(ctx, sources[d.scan], masks[d.scan], d)
    if threads > 1:
        lanes.merge_threads(agg_kinds, ts_kinds, counts, accs, tss)
    counts, accs, tss = counts[0], accs[0], tss[0]
    return _results(resolved, lane_list, distinct, counts, accs, tss, n)


def _plan_lanes(resolved: list[_Scan]) -> tuple[list[_Lane], list[_Distinct]]:
    """A lane per (scan, reduction); slots: aggregates first in ``counts``
    (their value counts share the slot number of ``accs``), then counts."""
    out: list[_Lane] = []
    distinct: list[_Distinct] = []
    for si, s in enumerate(resolved):
        for red in s.reductions:
            if red[0] == "agg" and red[1] == "count_distinct":
                distinct.append(_Distinct(si, red))
            elif red[0] == "agg":
                out.append(_Lane(si, red, _AGG_KINDS[red[1]], 0))
            elif red[0] == "ts":
                out.append(_Lane(si, red, lanes.NEWEST if red[1] == "last" else lanes.OLDEST, 0))
            else:
                out.append(_Lane(si, red, lanes.COUNT, 0))
    n_agg = 0
    n_cnt = 0
    n_ts = 0
    n_agg_total = sum(1 for ln in out if lanes.SUM <= ln.kind <= lanes.MAX)
    for ln in out:
        if lanes.SUM <= ln.kind <= lanes.MAX:
            ln.slot = n_agg
            n_agg += 1
        elif ln.kind == lanes.COUNT:
            ln.slot = n_agg_total + n_cnt
            n_cnt += 1
        else:
            ln.slot = n_ts
            n_ts += 1
    return out, distinct


# the rows [a, b) a scan reads in a partition, and the type table its rows
# must still pass there (None: every row of the source has its types)
Source = tuple[Partition, int, int, np.ndarray | None]


def _sources(part: Partition, resolved: list[_Scan], ranges: list[tuple[int, int]]) -> list[Source]:
    """Where each scan reads in ``part``: its selection of the scan's types
    (``typeindex``) when they are a small share of it, else the partition
    itself (any type, or its types tested by a mask)."""
    out: list[Source] = []
    for s, (a, b) in zip(resolved, ranges, strict=True):
        if a >= b or s.type_lut is None:
            out.append((part, a, b, None))
        elif dense(part, s.type_lut):
            out.append((part, a, b, s.type_lut))
        else:
            sub = type_rows(part, s.type_lut).partition
            out.append((sub, *row_range(sub, s.lo, s.hi), None))
    return out


def _masks(
    ctx: EvalContext, resolved: list[_Scan], sources: list[Source]
) -> list[np.ndarray | None]:
    """Each scan's row mask, predicate and still-needed type test (None: every
    row passes); scans with the same tests over the same rows share one mask."""
    out: list[np.ndarray | None] = []
    memo: dict[tuple[Any, ...], np.ndarray] = {}
    for s, (src, a, b, lut) in zip(resolved, sources, strict=True):
        pred = s.filter.pred
        if a >= b or (pred is None and lut is None):
            out.append(None)
            continue
        key = (pred, None if lut is None else lut.tobytes(), id(src), a, b)
        hit = memo.get(key)
        if hit is None:
            found = None if pred is None else event_mask(ctx, pred, src, a, b)
            if lut is not None:
                typed = filters.lut_mask(src.type[a:b], lut)
                found = typed if found is None else (found & typed)
            assert found is not None
            hit = memo[key] = found
        out.append(hit)
    return out


def _run_lanes(
    ctx: EvalContext,
    resolved: list[_Scan],
    sources: list[Source],
    masks: list[np.ndarray | None],
    chunk: list[_Lane],
    counts: np.ndarray,
    accs: np.ndarray,
    tss: np.ndarray,
) -> None:
    """The lanes of ``chunk``: all over the same types, so the same source
    (a lane whose window misses the partition has none: it is skipped)."""
    live = [sources[ln.scan] for ln in chunk if sources[ln.scan][1] < sources[ln.scan][2]]
    if not live:
        return
    src = live[0][0]
    k_n = len(chunk)
    spans: list[tuple[int, int]] = []
    kind = np.empty(k_n, dtype=np.int64)
    slot = np.empty(k_n, dtype=np.int64)
    has_mask = np.zeros(k_n, dtype=np.bool_)
    mask_base = np.zeros(k_n, dtype=np.int64)
    val_base = np.zeros(k_n, dtype=np.int64)
    mask_parts: list[np.ndarray] = []
    mask_at: dict[int, int] = {}  # id(mask array) -> its offset in the flat buffer
    val_parts: list[np.ndarray] = []
    mask_len = 0
    val_len = 0
    for k, ln in enumerate(chunk):
        own, a, b, _ = sources[ln.scan]
        if a < b and own is not src:
            raise ValueError("lanes of one group must read the same rows")
        kind[k] = ln.kind
        slot[k] = ln.slot
        mask = masks[ln.scan]
        if a < b and lanes.SUM <= ln.kind <= lanes.MAX:
            fd = event_field(ctx, ln.red[2], src, a, b)
            if fd.values is None:
                a = b = 0  # the column does not exist here: no value to fold
            else:
                if fd.valid is not None:
                    mask = fd.valid if mask is None else (mask & fd.valid)
                val_parts.append(fd.values.astype(np.float64, copy=False))
                val_base[k] = a - val_len
                val_len += b - a
        if a >= b:
            spans.append((0, 0))
            continue
        spans.append((a, b))
        if mask is not None:
            at = mask_at.get(id(mask))
            if at is None:
                at = mask_len
                mask_at[id(mask)] = at
                mask_parts.append(mask)
                mask_len += len(mask)
            has_mask[k] = True
            mask_base[k] = a - at
    if all(i >= j for i, j in spans):
        return
    if sum(j - i for i, j in spans) < PARALLEL_MIN_ROWS:
        counts, accs, tss = counts[:1], accs[:1], tss[:1]  # thread 0's outputs: one thread
    lanes.scan_lanes(
        src.contact,
        src.ts,
        spans,
        kind,
        slot,
        has_mask,
        mask_base,
        _flat(mask_parts, np.bool_),
        val_base,
        _flat(val_parts, np.float64) if val_parts else _EMPTY_F64,
        counts,
        accs,
        tss,
    )


def _flat(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
    if not arrays:
        return np.zeros(0, dtype=dtype)
    if len(arrays) == 1:
        return arrays[0]
    return np.concatenate(arrays)


def _collect_pairs(ctx: EvalContext, source: Source, mask: np.ndarray | None, d: _Distinct) -> None:
    src, a, b, _ = source  # a type test still needed is in ``mask``
    if a >= b:
        return
    fd = event_field(ctx, d.red[2], src, a, b)
    if fd.values is None:
        return
    if fd.valid is not None:
        mask = fd.valid if mask is None else (mask & fd.valid)
    codes = d.red[2].kind in ("string", "event_type") and fd.values.dtype == np.int32
    if codes and fd.offsets is None:
        # dictionary codes: the pairs straight from the rows, in one kernel
        d.pairs.append(filters.select_pairs(src.contact, None, a, b, mask, a, fd.values, a))
        return
    local = np.arange(b - a) if mask is None else np.flatnonzero(mask)
    contact = src.contact[a:b][local]
    if fd.offsets is not None:
        assert fd.list_codes is not None
        # a list counts its distinct elements
        starts = fd.offsets[:-1][local]
        lengths = fd.offsets[1:][local] - starts
        contacts, elements = list_elements(contact, starts, lengths, fd.list_codes)
        d.pairs.append((contacts, elements.astype(np.int32, copy=False)))
        return
    if not codes:
        d.codes = False  # not dictionary codes: counted by sorting
    d.pairs.append((contact, fd.values[local]))


def _distinct_result(d: _Distinct, n: int) -> np.ndarray:
    if not d.pairs:
        return np.zeros(n, dtype=np.int64)
    c = np.concatenate([x for x, _ in d.pairs]).astype(np.int32, copy=False)
    if d.codes:
        v = np.concatenate([y for _, y in d.pairs]).astype(np.int32, copy=False)
        if len(v) == 0 or v.min() >= 0:
            return reduce.distinct_codes(c, v, n)
    v64 = np.concatenate([y for _, y in d.pairs])
    if v64.dtype != np.float64:
        v64 = v64.astype(np.int64)
    return reduce.distinct_counts(c, v64, n)


def _results(
    resolved: list[_Scan],
    lane_list: list[_Lane],
    distinct: list[_Distinct],
    counts: np.ndarray,
    accs: np.ndarray,
    tss: np.ndarray,
    n: int,
) -> list[ScanResult]:
    out: list[ScanResult] = [{} for _ in resolved]
    for ln in lane_list:
        res = out[ln.scan]
        if ln.kind == lanes.COUNT:
            res[ln.red] = {"count": counts[ln.slot]}
        elif ln.kind >= lanes.NEWEST:
            res[ln.red] = {"ts": tss[ln.slot]}
        else:
            res[ln.red] = {"acc": accs[ln.slot], "n": counts[ln.slot]}
    for d in distinct:
        out[d.scan][d.red] = {"count": _distinct_result(d, n)}
    return out
