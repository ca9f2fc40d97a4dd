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
from audience.engine import counting
from audience.engine.context import EvalContext
from audience.engine.kernels import filters, lanes, reduce
from audience.engine.kernels.config import PARALLEL_MIN_ROWS
from audience.engine.postings import accepted_codes, postings
from audience.engine.predicates import event_field, event_mask
from audience.engine.scan import filter_range, list_elements, row_range, type_table
from audience.engine.typeindex import dense, type_share, typed_source
from audience.snapshot import Partition

ScanResult = dict[Reduction, dict[str, np.ndarray]]
# a ``sum`` is only ever compared (a sum over no events is 0): no value count
_AGG_KINDS = {"sum": lanes.TOTAL, "avg": lanes.SUM, "min": lanes.MIN, "max": lanes.MAX}
# min/max of every kind but float keep their values exactly, in int64
_INT_KINDS = {"min": lanes.IMIN, "max": lanes.IMAX}


@dataclass
class _Scan:
    """One scan step: its filter resolved for this evaluation."""

    filter: p.RowFilter
    reductions: tuple[Reduction, ...]
    lo: int
    hi: int
    type_lut: np.ndarray | None  # None: any type
    empty: bool  # none of its types exists in the snapshot
    key: bytes | None = None  # ``type_lut.tobytes()``
    # its predicate as (column, codes) when an index gives its rows (``postings``)
    indexed: tuple[str, np.ndarray] | None = None


@dataclass
class _Lane:
    scan: int
    red: Reduction
    kind: int
    slot: int


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
    (``counting.count_bounds``; a step not in it counts in full)."""

    def __init__(
        self,
        scans: Mapping[int, tuple[p.RowFilter, tuple[Reduction, ...]]],
        bounds: Mapping[int, int | None] | None = None,
    ) -> None:
        self.steps = dict(scans)
        self.bounds = dict(bounds or {})
        self.results: dict[int, ScanResult] | None = None
        self.first: int | None = None

    def result(self, step: int, ctx: EvalContext) -> ScanResult:
        if self.results is None:
            self.first = step
            order = sorted(self.steps)
            bounds = {k: self.bounds.get(i) for k, i in enumerate(order)}
            outs = run_scans(ctx, [self.steps[i] for i in order], bounds)
            self.results = dict(zip(order, outs, strict=True))
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
    n = ctx.snapshot.n_contacts
    resolved: list[_Scan] = []
    for flt, reds in scans:
        lo, hi = filter_range(ctx, flt)
        lut = None if flt.types is None else type_table(ctx, flt.types)
        empty = lut is not None and not lut.any()
        key = None if lut is None else lut.tobytes()
        indexed = accepted_codes(ctx, flt.pred)
        resolved.append(_Scan(flt, reds, lo, hi, lut, empty, key, indexed))
    lane_list, distinct = _plan_lanes(resolved, bounds or {})
    # lanes over the same types read the same selected rows: one pass per group
    by_types: dict[bytes | None, list[_Lane]] = {}
    for ln in lane_list:
        by_types.setdefault(resolved[ln.scan].key, []).append(ln)
    groups = list(by_types.values())
    parts = [
        (part, [(0, 0) if s.empty else row_range(part, s.lo, s.hi) for s in resolved])
        for part in ctx.snapshot.partitions
    ]
    widest = _widest_call(resolved, parts)
    threads = numba.get_num_threads() if widest >= PARALLEL_MIN_ROWS else 1
    # by slot: the counted aggregates, then the totals (``_plan_lanes``)
    folding = sorted((ln for ln in lane_list if lanes.folds(ln.kind)), key=lambda ln: ln.slot)
    agg_kinds = [ln.kind for ln in folding]
    n_counted = sum(1 for ln in lane_list if lanes.is_agg(ln.kind))
    ts_kinds = [ln.kind for ln in lane_list if ln.kind in (lanes.NEWEST, lanes.OLDEST)]
    n_cnt = sum(1 for ln in lane_list if ln.kind == lanes.COUNT)
    # exists flags and byte counts share the uint8 slots
    flag_kinds = [ln.kind for ln in lane_list if ln.kind in (lanes.EXISTS, lanes.COUNT8)]
    n_flags = len(flag_kinds)
    # the outputs are leased (engine.scratch): no fresh pages per evaluation
    full = ctx.scratch.full
    flags = full((threads, n_flags, n), np.uint8)
    counts = full((threads, n_counted + n_cnt, n), np.int64)
    # the float and the int folds share the aggregate slots, but a kind no
    # lane folds needs no contacts (at millions of contacts, zeroing an
    # unused array per evaluation cost more than the scan's reading)
    n_int = sum(1 for kd in agg_kinds if kd in (lanes.IMIN, lanes.IMAX))
    n_float = len(agg_kinds) - n_int
    accs = full((threads, len(agg_kinds), n if n_float else 0), np.float64)
    iaccs = full((threads, len(agg_kinds), n if n_int else 0), np.int64)
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
    for part, ranges in parts:
        if all(a >= b for a, b in ranges):
            stats["partitions_skipped"] += 1
            continue
        stats["partitions_read"] += 1
        sources = _sources(part, resolved, ranges)
        masks = _masks(ctx, resolved, sources)
        for group in groups:
            _run_lanes(ctx, resolved, sources, masks, group, (counts, accs, tss, iaccs, flags))
        for d in distinct:
            _collect_pairs(ctx, sources[d.scan], masks[d.scan], d)
    if threads > 1:
        lanes.merge_threads(agg_kinds, ts_kinds, counts, accs, tss, iaccs, flags, flag_kinds)
    outputs = (counts[0], accs[0], tss[0], iaccs[0], flags[0])
    return _results(resolved, lane_list, distinct, outputs, n)


def _widest_call(
    resolved: list[_Scan], parts: list[tuple[Partition, list[tuple[int, int]]]]
) -> float:
    """About how many rows the widest lane call of the pass reads (one per
    partition and group of scans over the same types; ``_run_lanes``): each
    lane's window rows, times its types' share when they are read as a
    selection of the partition (``typed_source``).  A call below
    ``PARALLEL_MIN_ROWS`` runs on one thread, so a pass none of whose calls
    reaches it needs no per-thread outputs (a store of million-row partitions
    paid the fill and the merge of a second thread's outputs for nothing)."""
    widest = 0.0
    for part, ranges in parts:
        calls: dict[bytes | None, float] = {}
        for s, (a, b) in zip(resolved, ranges, strict=True):
            n_lanes = sum(1 for red in s.reductions if red[:2] != ("agg", "count_distinct"))
            if a >= b or not n_lanes:
                continue
            lut = s.type_lut
            share = 1.0 if lut is None or dense(part, lut) else type_share(part, lut)
            calls[s.key] = calls.get(s.key, 0.0) + (b - a) * share * n_lanes
        widest = max(widest, *calls.values(), 0.0)
    return widest


def _plan_lanes(
    resolved: list[_Scan], bounds: Mapping[int, int | None]
) -> tuple[list[_Lane], list[_Distinct]]:
    """A lane per (scan, reduction); slots: aggregates first in ``counts``
    (their value counts share the slot number of ``accs``), then counts;
    totals (no value count) take the ``accs`` slots after the aggregates';
    ts lanes and the byte lanes (exists, count8) number their own slots."""
    out: list[_Lane] = []
    distinct: list[_Distinct] = []
    for si, s in enumerate(resolved):
        for red in s.reductions:
            if red[0] == "agg" and red[1] == "count_distinct":
                distinct.append(_Distinct(si, red))
            elif red[0] == "agg":
                exact = red[1] in _INT_KINDS and red[2].kind != "float"
                out.append(_Lane(si, red, (_INT_KINDS if exact else _AGG_KINDS)[red[1]], 0))
            elif red[0] == "ts":
                out.append(_Lane(si, red, lanes.NEWEST if red[1] == "last" else lanes.OLDEST, 0))
            else:
                kind = counting.count_kind(bounds[si]) if si in bounds else lanes.COUNT
                out.append(_Lane(si, red, kind, 0))
    n_agg = 0
    n_cnt = 0
    n_ts = 0
    n_flags = 0
    n_agg_total = sum(1 for ln in out if lanes.is_agg(ln.kind))
    n_totals = 0
    for ln in out:
        if lanes.is_agg(ln.kind):
            ln.slot = n_agg
            n_agg += 1
        elif ln.kind == lanes.TOTAL:
            ln.slot = n_agg_total + n_totals
            n_totals += 1
        elif ln.kind == lanes.COUNT:
            ln.slot = n_agg_total + n_cnt
            n_cnt += 1
        elif ln.kind in (lanes.EXISTS, lanes.COUNT8):
            ln.slot = n_flags
            n_flags += 1
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
            continue
        assert s.key is not None
        sub = typed_source(part, s.type_lut, s.key)
        if sub is None:
            out.append((part, a, b, s.type_lut))
        else:
            out.append((sub, *row_range(sub, s.lo, s.hi), None))
    return out


@dataclass(frozen=True)
class _Rows:
    """The rows of a scan's source in ``[a, b)`` that pass its tests: a bool
    mask over ``[a, b)``, or the passing row numbers (``positions``, from an
    index); both None: every row passes."""

    mask: np.ndarray | None = None
    positions: np.ndarray | None = None
    contact: np.ndarray | None = None  # the contacts at ``positions``

    def as_mask(self, a: int, b: int) -> np.ndarray | None:
        if self.positions is None:
            return self.mask
        out = np.zeros(b - a, dtype=np.bool_)
        out[self.positions - a] = True
        return out


_ALL = _Rows()


def _masks(ctx: EvalContext, resolved: list[_Scan], sources: list[Source]) -> list[_Rows]:
    """Each scan's passing rows: predicate and still-needed type test; scans
    with the same tests over the same rows share them."""
    out: list[_Rows] = []
    memo: dict[tuple[Any, ...], _Rows] = {}
    for s, (src, a, b, lut) in zip(resolved, sources, strict=True):
        pred = s.filter.pred
        if a >= b or (pred is None and lut is None):
            out.append(_ALL)
            continue
        key = (pred, None if lut is None else lut.tobytes(), id(src), a, b)
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = _passing(ctx, s, src, a, b, lut)
        out.append(hit)
    return out


def _passing(
    ctx: EvalContext,
    scan: _Scan,
    src: Partition,
    a: int,
    b: int,
    lut: np.ndarray | None,
) -> _Rows:
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
        return _Rows(positions=rows, contact=contact)
    found = None if pred is None else event_mask(ctx, pred, src, a, b)
    if lut is not None:
        typed = filters.lut_mask(src.type[a:b], lut)
        found = typed if found is None else (found & typed)
    return _Rows(mask=found)


def _run_lanes(
    ctx: EvalContext,
    resolved: list[_Scan],
    sources: list[Source],
    masks: list[_Rows],
    chunk: list[_Lane],
    outputs: tuple[np.ndarray, ...],
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
    has_pos = np.zeros(k_n, dtype=np.bool_)
    mask_base = np.zeros(k_n, dtype=np.int64)
    val_base = np.zeros(k_n, dtype=np.int64)
    masks_flat = _Flat()
    pos_flat = _Flat()
    pos_contact_flat = _Flat()
    vals_flat = _Flat()
    ivals_flat = _Flat()
    rows_read = 0
    for k, ln in enumerate(chunk):
        own, a, b, _ = sources[ln.scan]
        if a < b and own is not src:
            raise ValueError("lanes of one group must read the same rows")
        kind[k] = ln.kind
        slot[k] = ln.slot
        mask, positions = masks[ln.scan].mask, masks[ln.scan].positions
        if positions is not None and len(positions) == 0:
            a = b = 0  # no row passes
        if a < b and lanes.folds(ln.kind):
            fd = event_field(ctx, ln.red[2], src, a, b)
            if fd.values is None:
                a = b = 0  # the column does not exist here: no value to fold
            else:
                if fd.valid is not None:
                    mask = fd.valid if mask is None else (mask & fd.valid)
                if ln.kind in (lanes.IMIN, lanes.IMAX):
                    val_base[k] = a - ivals_flat.add(fd.values.astype(np.int64, copy=False))
                else:
                    val_base[k] = a - vals_flat.add(fd.values.astype(np.float64, copy=False))
        if a >= b:
            spans.append((0, 0))
            continue
        if positions is not None:
            at = pos_flat.add(positions)
            contact = masks[ln.scan].contact
            assert contact is not None
            if pos_contact_flat.add(contact) != at:
                raise ValueError("positions and their contacts must be laid out alike")
            spans.append((at, at + len(positions)))
            has_pos[k] = True
            rows_read += len(positions)
        else:
            spans.append((a, b))
            rows_read += b - a
        if mask is not None:
            has_mask[k] = True
            mask_base[k] = a - masks_flat.add(mask)
    if rows_read == 0:
        return
    if rows_read < PARALLEL_MIN_ROWS:
        outputs = tuple(out[:1] for out in outputs)  # thread 0's outputs: one thread
    counts, accs, tss, iaccs, flags = outputs
    lanes.scan_lanes(
        src.contact,
        src.ts,
        spans,
        kind,
        slot,
        has_mask,
        mask_base,
        masks_flat.array(np.bool_),
        val_base,
        vals_flat.array(np.float64),
        counts,
        accs,
        tss,
        ivals_flat.array(np.int64),
        iaccs,
        has_pos,
        pos_flat.array(np.int32),
        flags,
        pos_contact_flat.array(np.int32),
    )


class _Flat:
    """Arrays laid end to end in one buffer (each array once, by identity)."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.at: dict[int, int] = {}
        self.size = 0

    def add(self, arr: np.ndarray) -> int:
        """The offset of ``arr`` in the buffer."""
        at = self.at.get(id(arr))
        if at is None:
            at = self.at[id(arr)] = self.size
            self.parts.append(arr)
            self.size += len(arr)
        return at

    def array(self, dtype: Any) -> np.ndarray:
        if not self.parts:
            return _EMPTY[np.dtype(dtype).char]
        if len(self.parts) == 1:
            return self.parts[0]
        return np.concatenate(self.parts)


_EMPTY = {
    np.dtype(t).char: np.zeros(0, dtype=t) for t in (np.bool_, np.float64, np.int64, np.int32)
}


def _collect_pairs(ctx: EvalContext, source: Source, passing: _Rows, d: _Distinct) -> None:
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
    resolved: list[_Scan],
    lane_list: list[_Lane],
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
