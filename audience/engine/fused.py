"""Every scan of a program in one pass over the partitions.

The scan steps of a program read the same partitions (a segment's rules
mostly differ in type, predicate and window only), so each partition is
read once for all of them: every (scan, reduction) becomes a lane of
``kernels.lanes.scan_lanes``, which reads ``type`` and ``contact`` once and
feeds each row to the lanes whose types, window and predicate it passes.
``count_distinct`` lanes collect their (contact, value) pairs in the same
partition loop and are counted at the end.

A lane reads the rows its predicate passes: a mask over its window, or,
for a string test on a column (``product_name = "Red Shoes"``), the rows
straight from that column's index (``postings``), which costs the passing
rows only.  A ``count`` is as narrow as its tests allow (``counting``): a
flag for ``did``, a saturating byte for ``at least 50 times``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from audience.compiler import plan as p
from audience.compiler.physical import Reduction
from audience.engine.context import EvalContext
from audience.engine.kernels import config, filters, lanes, reduce
from audience.engine.lanecall import ALL, Rows, Source, run_lanes
from audience.engine.postings import postings
from audience.engine.predicates import event_field, event_mask
from audience.engine.scan import list_elements, row_range
from audience.engine.scanplan import Lane, Scan, ScanPlan
from audience.engine.typeindex import dense, type_share, typed_source
from audience.snapshot import Partition

ScanResult = dict[Reduction, dict[str, np.ndarray]]

_EMPTY_I32 = np.zeros(0, dtype=np.int32)


@dataclass
class _Distinct:
    scan: int
    red: Reduction
    pairs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    codes: bool = True  # every value seen so far is a dictionary code
    # (contact, code) pairs of dictionary codes, written in place partition
    # after partition (``filled`` of them), so they need no concatenation
    buf: tuple[np.ndarray, np.ndarray] = (_EMPTY_I32, _EMPTY_I32)
    filled: int = 0

    def reserve(self, rows: int) -> None:
        """Room for the pairs of ``rows`` rows (np.empty maps pages only as
        they are written: an upper bound costs nothing)."""
        self.buf = (np.empty(rows, dtype=np.int32), np.empty(rows, dtype=np.int32))
        self.filled = 0

    def all_pairs(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Every pair collected (None: none)."""
        mine = (self.buf[0][: self.filled], self.buf[1][: self.filled])
        if not self.pairs:
            return mine if self.filled else None
        parts = [mine, *self.pairs] if self.filled else self.pairs
        return np.concatenate([c for c, _ in parts]), np.concatenate([v for _, v in parts])


class FusedScans:
    """The scan steps of one program (``{step index: (filter, reductions)}``),
    run together on the first request for any of them.  ``bounds``: per step
    whose count is only compared with bounds, the least cap its counter needs
    (``counting.count_bounds``; a step not in it counts in full).  ``plan``:
    the program's kept ``ScanPlan`` of these steps (None: made for this run)."""

    def __init__(
        self,
        scans: Mapping[int, tuple[p.RowFilter, tuple[Reduction, ...]]] | None = None,
        bounds: Mapping[int, int | None] | None = None,
        plan: ScanPlan | None = None,
    ) -> None:
        self.plan = plan if plan is not None else ScanPlan(scans or {}, bounds)
        self.results: dict[int, ScanResult] | None = None
        self.first: int | None = None

    def result(self, step: int, ctx: EvalContext) -> ScanResult:
        if self.results is None:
            self.first = step
            plan = self.plan
            outs = run_plan(ctx, plan)
            self.results = dict(zip(plan.order, outs, strict=True))
        elif step != self.first:
            ctx.stats["fused_into"] = self.first
        return self.results[step]


def run_scans(
    ctx: EvalContext,
    scans: list[tuple[p.RowFilter, tuple[Reduction, ...]]],
    bounds: Mapping[int, int | None] | None = None,
) -> list[ScanResult]:
    """Each scan's reductions (per reduction, its per-contact arrays:
    ``count``; ``ts``; or ``acc`` and ``n``, the values folded), in one pass
    over the partitions.  The ``count`` of a scan with a bound in ``bounds``
    (by index in ``scans``) is as narrow as the bound allows
    (``counting.count_kind``): a bool array for a bound of 1 (whether the
    contact has a row), a uint8 one saturating at 255, else int64.  Stats
    (partitions read/skipped) go to ``ctx.stats``, once for the whole pass."""
    return run_plan(ctx, ScanPlan(dict(enumerate(scans)), bounds))


def run_plan(ctx: EvalContext, plan: ScanPlan) -> list[ScanResult]:
    """``run_scans`` of a kept plan's scans, in its order: what it made of
    this snapshot (``ScanPlan.prepared``) and of this ``now`` reused."""
    n = ctx.snapshot.n_contacts
    scans, prep = plan.scans, plan.prepared(ctx)
    resolved = [
        Scan(flt, reds, lo, hi, st.type_lut, st.empty, st.key, st.indexed, same, n_lanes)
        for (flt, reds), (lo, hi), st, same, n_lanes in zip(
            scans, plan.windows(ctx), prep.statics, prep.same_pred, prep.n_lanes, strict=True
        )
    ]
    lane_list = prep.lane_list
    distinct = [_Distinct(si, red) for si, red in prep.distinct]
    # (a partition whose bounds miss a scan's window is skipped here, without
    # a call per partition and scan)
    parts = [
        (
            part,
            [
                (0, 0)
                if s.empty or part.max_ts < s.lo or part.min_ts > s.hi
                else row_range(part, s.lo, s.hi)
                for s in resolved
            ],
        )
        for part in ctx.snapshot.partitions
    ]
    # one thread when it is all there is, or when no call can reach the
    # threads' rows (its partition's every row, for every lane of the pass)
    threads = numba.get_num_threads()
    if threads > 1 and (
        prep.widest_bound(ctx.snapshot) < config.PARALLEL_MIN_ROWS
        or _widest_call(resolved, parts, prep.shares) < config.PARALLEL_MIN_ROWS
    ):
        threads = 1
    agg_kinds, ts_kinds, flag_kinds = prep.agg_kinds, prep.ts_kinds, prep.flag_kinds
    # the outputs are leased (engine.scratch): no fresh pages per evaluation
    full = ctx.scratch.full
    flags = full((threads, len(flag_kinds), n), np.uint8)
    counts = full((threads, prep.n_counted + prep.n_cnt, n), np.int64)
    # a kind no lane folds needs no contacts (at millions of contacts,
    # zeroing an unused array per evaluation cost more than the scan's reading)
    accs = full((threads, len(agg_kinds), n if prep.n_float else 0), np.float64)
    iaccs = full((threads, len(agg_kinds), n if prep.n_int else 0), np.int64)
    tss = ctx.scratch.empty((threads, len(ts_kinds), n), np.int64)
    for r, kd in enumerate(ts_kinds):
        tss[:, r] = reduce.INT64_MIN if kd == lanes.NEWEST else reduce.INT64_MAX
    for d in distinct:  # a scan's source never holds more rows than its range
        d.reserve(sum(ranges[d.scan][1] - ranges[d.scan][0] for _, ranges in parts))
    stats = ctx.stats
    stats["partitions_read"] = 0
    stats["partitions_skipped"] = 0
    live = [s for s in resolved if not s.empty]
    if live:
        stats["range"] = [min(s.lo for s in live), max(s.hi for s in live)]
    outputs = (counts, accs, tss, iaccs, flags)
    one = (counts[0], accs[0], tss[0], iaccs[0], flags[0])  # thread 0's, 2-d
    for part, ranges in parts:
        for a, b in ranges:
            if a < b:
                break
        else:  # no scan reads it
            stats["partitions_skipped"] += 1
            continue
        stats["partitions_read"] += 1
        sources = _sources(part, resolved, ranges)
        masks = _masks(ctx, resolved, sources)
        for group in prep.groups:
            run_lanes(ctx, sources, masks, group, outputs, one)
        for d in distinct:
            _collect_pairs(ctx, sources[d.scan], masks[d.scan], d)
    if threads > 1:
        lanes.merge_threads(agg_kinds, ts_kinds, counts, accs, tss, iaccs, flags, flag_kinds)
    return _results(resolved, lane_list, distinct, one, n)


def _widest_call(
    resolved: list[Scan],
    parts: list[tuple[Partition, list[tuple[int, int]]]],
    shares: dict[tuple[int, bytes | None], float] | None = None,
) -> float:
    """About how many rows the widest lane call of the pass reads (one per
    partition and group of scans over the same types; ``run_lanes``): each
    lane's window rows, times its types' share when they are read as a
    selection of the partition (``typed_source``).  A call below
    ``PARALLEL_MIN_ROWS`` runs on one thread, so a pass none of whose calls
    reaches it needs no per-thread outputs (a store of million-row partitions
    paid the fill and the merge of a second thread's outputs for nothing).
    ``shares``: the types' shares by (partition index, types) found so far
    for this snapshot, added to (None: none kept)."""
    known = {} if shares is None else shares
    widest = 0.0
    for i, (part, ranges) in enumerate(parts):
        calls: dict[bytes | None, float] = {}
        for s, (a, b) in zip(resolved, ranges, strict=True):
            if a >= b:
                continue
            n_lanes = s.n_lanes
            if n_lanes < 0:
                n_lanes = sum(1 for red in s.reductions if red[:2] != ("agg", "count_distinct"))
            if not n_lanes:
                continue
            share = known.get((i, s.key))
            if share is None:
                lut = s.type_lut
                share = 1.0 if lut is None or dense(part, lut) else type_share(part, lut)
                known[i, s.key] = share
            calls[s.key] = calls.get(s.key, 0.0) + (b - a) * share * n_lanes
        if calls:
            widest = max(widest, *calls.values())
    return widest


def _sources(part: Partition, resolved: list[Scan], ranges: list[tuple[int, int]]) -> list[Source]:
    """Where each scan reads in ``part``: its selection of the scan's types
    (``typeindex``) when they are a small share of it, else the partition
    itself (any type, or its types tested by a mask)."""
    out: list[Source] = []
    for s, (a, b) in zip(resolved, ranges, strict=True):
        if a >= b or s.type_lut is None:
            out.append((part, a, b, None))
            continue
        assert s.key is not None
        sub = typed_source(part, s.type_lut, s.key)
        if sub is None:
            out.append((part, a, b, s.type_lut))
        else:
            out.append((sub, *row_range(sub, s.lo, s.hi), None))
    return out


def _masks(ctx: EvalContext, resolved: list[Scan], sources: list[Source]) -> list[Rows]:
    """Each scan's passing rows: predicate and still-needed type test; scans
    with the same tests over the same rows share them."""
    out: list[Rows] = []
    memo: dict[tuple[Any, ...], Rows] = {}
    for s, (src, a, b, lut) in zip(resolved, sources, strict=True):
        pred = s.filter.pred
        if a >= b or (pred is None and lut is None):
            out.append(ALL)
            continue
        # (a lut still needed is the scan's own, ``_sources``: its key names it)
        same = pred if s.same_pred < 0 else s.same_pred
        key = (same, None if lut is None else s.key, id(src), a, b)
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = _passing(ctx, s, src, a, b, lut)
        out.append(hit)
    return out


def _passing(
    ctx: EvalContext,
    scan: Scan,
    src: Partition,
    a: int,
    b: int,
    lut: np.ndarray | None,
) -> Rows:
    pred, indexed = scan.filter.pred, scan.indexed
    index = None if indexed is None else postings(src, indexed[0])
    if indexed is not None and index is not None:
        # a string test on an indexed column: the passing rows straight from
        # the index, costing those rows only
        ctx.columns_read.add(indexed[0])
        rows, contact = index.select(indexed[1], a, b)
        if lut is not None and len(rows):
            typed = filters.lut_mask(src.type[rows], lut)
            rows, contact = rows[typed], contact[typed]
        return Rows(positions=rows, contact=contact)
    found = None if pred is None else event_mask(ctx, pred, src, a, b)
    if lut is not None:
        typed = filters.lut_mask(src.type[a:b], lut)
        found = typed if found is None else (found & typed)
    return Rows(mask=found)


def _collect_pairs(ctx: EvalContext, source: Source, passing: Rows, d: _Distinct) -> None:
    src, a, b, _ = source  # a type test still needed is in ``passing``
    if a >= b:
        return
    mask = passing.as_mask(a, b)
    fd = event_field(ctx, d.red[2], src, a, b)
    if fd.values is None:
        return
    if fd.valid is not None:
        mask = fd.valid if mask is None else (mask & fd.valid)
    codes = d.red[2].kind in ("string", "event_type") and fd.values.dtype == np.int32
    if codes and fd.offsets is None:
        # dictionary codes: the pairs straight from the rows, in one kernel
        c, _ = filters.select_pairs(
            src.contact, None, a, b, mask, a, fd.values, a, out=d.buf, at=d.filled
        )
        d.filled += len(c)
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
    pairs = d.all_pairs()
    if pairs is None:
        return np.zeros(n, dtype=np.int64)
    c = pairs[0].astype(np.int32, copy=False)
    if d.codes:  # dictionary codes, never negative
        return reduce.distinct_codes(c, pairs[1].astype(np.int32, copy=False), n)
    v64 = pairs[1]
    if v64.dtype != np.float64:
        v64 = v64.astype(np.int64)
    return reduce.distinct_counts(c, v64, n)


def _results(
    resolved: list[Scan],
    lane_list: list[Lane],
    distinct: list[_Distinct],
    outputs: tuple[np.ndarray, ...],
    n: int,
) -> list[ScanResult]:
    counts, accs, tss, iaccs, flags = outputs
    out: list[ScanResult] = [{} for _ in resolved]
    for ln in lane_list:
        res = out[ln.scan]
        if ln.kind == lanes.COUNT:
            res[ln.red] = {"count": counts[ln.slot]}
        elif ln.kind == lanes.EXISTS:
            res[ln.red] = {"count": flags[ln.slot].view(np.bool_)}
        elif ln.kind == lanes.COUNT8:
            res[ln.red] = {"count": flags[ln.slot]}
        elif ln.kind in (lanes.NEWEST, lanes.OLDEST):
            res[ln.red] = {"ts": tss[ln.slot]}
        elif ln.kind in (lanes.IMIN, lanes.IMAX):
            res[ln.red] = {"acc": iaccs[ln.slot], "n": counts[ln.slot]}
        elif ln.kind == lanes.TOTAL:
            res[ln.red] = {"acc": accs[ln.slot]}
        else:
            res[ln.red] = {"acc": accs[ln.slot], "n": counts[ln.slot]}
    for d in distinct:
        out[d.scan][d.red] = {"count": _distinct_result(d, n)}
    return out
