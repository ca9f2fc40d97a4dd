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

import threading
import weakref
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
from audience.snapshot import Partition, Snapshot

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
    # the first scan of the pass with an equal predicate (its own index when
    # none): scans with the same tests over the same rows share their rows
    same_pred: int = -1
    n_lanes: int = -1  # its reductions but count_distinct (-1: not counted yet)


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
            outs = run_scans(ctx, plan.scans, plan.bounds, plan.prepared(ctx), plan)
            self.results = dict(zip(plan.order, outs, strict=True))
        elif step != self.first:
            ctx.stats["fused_into"] = self.first
        return self.results[step]


class ScanPlan:
    """The scan steps of one program, in step order, with what their pass
    needs that depends on the program and the snapshot only (``_Prepared``:
    type tables, index codes, lanes and their slots), kept per snapshot so
    that an evaluation pays for its window and its rows alone.  A snapshot
    is one version of a store (a new version is a new snapshot object), so
    keeping by snapshot object is keeping by version."""

    # snapshots kept per program: the newest (and one more, while a query on
    # the previous version finishes)
    KEEP = 2

    def __init__(
        self,
        scans: Mapping[int, tuple[p.RowFilter, tuple[Reduction, ...]]],
        bounds: Mapping[int, int | None] | None = None,
    ) -> None:
        self.order = sorted(scans)
        self.scans = [scans[i] for i in self.order]
        given = bounds or {}
        self.bounds = {k: given.get(i) for k, i in enumerate(self.order)}
        self._kept: list[tuple[weakref.ref[Snapshot], _Prepared]] = []
        self._lock = threading.Lock()
        # the scans' time ranges at the last ``now`` (a query's shards, or a
        # benchmark's repeats, evaluate at one ``now``)
        self._windows: tuple[int, list[tuple[int, int]]] | None = None

    def windows(self, ctx: EvalContext) -> list[tuple[int, int]]:
        """``windows(ctx, self.scans)``, kept for the last ``now``."""
        hit = self._windows
        if hit is None or hit[0] != ctx.now_ms:
            hit = self._windows = (ctx.now_ms, windows(ctx, self.scans))
        return hit[1]

    def prepared(self, ctx: EvalContext) -> _Prepared:
        snap = ctx.snapshot
        with self._lock:
            for ref, prep in self._kept:
                if ref() is snap:
                    return prep
        prep = _prepare(ctx, self.scans, self.bounds)
        with self._lock:
            self._kept = [(r, pp) for r, pp in self._kept if r() is not None][-(self.KEEP - 1) :]
            self._kept.append((weakref.ref(snap), prep))
        return prep


@dataclass(frozen=True)
class _Static:
    """What a scan's pass needs of one snapshot, whatever ``now``."""

    type_lut: np.ndarray | None
    empty: bool
    key: bytes | None
    indexed: tuple[str, np.ndarray] | None


@dataclass(frozen=True)
class _Group:
    """Lanes over the same types (one kernel call per partition), with their
    kinds and slots as the kernel takes them."""

    lanes: list[_Lane]
    kind: np.ndarray
    slot: np.ndarray


class _Prepared:
    """A pass's plan for one snapshot (``ScanPlan``): never written after
    ``_prepare`` but for ``shares``, a cache of ``_widest_call``'s type shares
    by (partition index, types), each computed once (a dict's item writes
    are atomic, and a value is the same whoever writes it)."""

    def __init__(
        self,
        statics: list[_Static],
        lane_list: list[_Lane],
        distinct: list[tuple[int, Reduction]],
        groups: list[_Group],
        same_pred: list[int],
    ) -> None:
        self.statics = statics
        self.same_pred = same_pred
        self.n_lanes = [len(chunk) for chunk in _lanes_by_scan(lane_list, len(statics))]
        self.lane_list = lane_list
        self.distinct = distinct
        self.groups = groups
        # by slot: the counted aggregates, then the totals (``_plan_lanes``)
        folding = sorted((ln for ln in lane_list if lanes.folds(ln.kind)), key=lambda ln: ln.slot)
        self.agg_kinds = [ln.kind for ln in folding]
        self.n_counted = sum(1 for ln in lane_list if lanes.is_agg(ln.kind))
        self.ts_kinds = [ln.kind for ln in lane_list if ln.kind in (lanes.NEWEST, lanes.OLDEST)]
        self.n_cnt = sum(1 for ln in lane_list if ln.kind == lanes.COUNT)
        # exists flags and byte counts share the uint8 slots
        self.flag_kinds = [ln.kind for ln in lane_list if ln.kind in (lanes.EXISTS, lanes.COUNT8)]
        # the float and the int folds share the aggregate slots
        self.n_int = sum(1 for kd in self.agg_kinds if kd in (lanes.IMIN, lanes.IMAX))
        self.n_float = len(self.agg_kinds) - self.n_int
        self.shares: dict[tuple[int, bytes | None], float] = {}
        self._bound: int | None = None

    def widest_bound(self, snapshot: Snapshot) -> int:
        """A bound of ``_widest_call`` over ``snapshot`` (whatever the windows):
        its largest partition's rows times the lanes of the pass."""
        if self._bound is None:
            rows = max((len(part) for part in snapshot.partitions), default=0)
            self._bound = rows * len(self.lane_list)
        return self._bound


def windows(
    ctx: EvalContext, scans: list[tuple[p.RowFilter, tuple[Reduction, ...]]]
) -> list[tuple[int, int]]:
    """Each scan's time range ``[lo, hi]`` at ``ctx.now_ms``."""
    return [filter_range(ctx, flt) for flt, _ in scans]


def _lanes_by_scan(lane_list: list[_Lane], n_scans: int) -> list[list[_Lane]]:
    out: list[list[_Lane]] = [[] for _ in range(n_scans)]
    for ln in lane_list:
        out[ln.scan].append(ln)
    return out


def _prepare(
    ctx: EvalContext,
    scans: list[tuple[p.RowFilter, tuple[Reduction, ...]]],
    bounds: Mapping[int, int | None],
) -> _Prepared:
    statics: list[_Static] = []
    for flt, _ in scans:
        lut = None if flt.types is None else type_table(ctx, flt.types)
        empty = lut is not None and not lut.any()
        key = None if lut is None else lut.tobytes()
        statics.append(_Static(lut, empty, key, accepted_codes(ctx, flt.pred)))
    shells = [_Scan(flt, reds, 0, 0, None, False) for flt, reds in scans]
    lane_list, distinct = _plan_lanes(shells, bounds)
    # lanes over the same types read the same selected rows: one pass per group
    by_types: dict[bytes | None, list[_Lane]] = {}
    for ln in lane_list:
        by_types.setdefault(statics[ln.scan].key, []).append(ln)
    groups = [
        _Group(
            chunk,
            np.array([ln.kind for ln in chunk], dtype=np.int64),
            np.array([ln.slot for ln in chunk], dtype=np.int64),
        )
        for chunk in by_types.values()
    ]
    preds = [flt.pred for flt, _ in scans]
    same = [preds.index(pred) for pred in preds]  # by equality, once per snapshot
    return _Prepared(statics, lane_list, [(d.scan, d.red) for d in distinct], groups, same)


def run_scans(
    ctx: EvalContext,
    scans: list[tuple[p.RowFilter, tuple[Reduction, ...]]],
    bounds: Mapping[int, int | None] | None = None,
    prepared: _Prepared | None = None,
    plan: ScanPlan | None = None,
) -> list[ScanResult]:
    """Each scan's reductions (per reduction, its per-contact arrays:
    ``count``; ``ts``; or ``acc`` and ``n``, the values folded), in one pass
    over the partitions.  The ``count`` of a scan with a bound in ``bounds``
    (by index in ``scans``) is as narrow as the bound allows
    (``counting.count_kind``): a bool array for a bound of 1 (whether the
    contact has a row), a uint8 one saturating at 255, else int64.  Stats
    (partitions read/skipped) go to ``ctx.stats``, once for the whole pass.
    ``prepared``: the pass's plan for this snapshot (``ScanPlan.prepared``;
    None: made now); ``plan``: the ``ScanPlan`` of ``scans`` (None: none)."""
    n = ctx.snapshot.n_contacts
    prep = prepared if prepared is not None else _prepare(ctx, scans, bounds or {})
    resolved = [
        _Scan(flt, reds, lo, hi, st.type_lut, st.empty, st.key, st.indexed, same, n_lanes)
        for (flt, reds), (lo, hi), st, same, n_lanes in zip(
            scans, windows(ctx, scans) if plan is None else plan.windows(ctx), prep.statics,
            prep.same_pred, prep.n_lanes, strict=True,
        )
    ]  # fmt: skip
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
        prep.widest_bound(ctx.snapshot) < PARALLEL_MIN_ROWS
        or _widest_call(resolved, parts, prep.shares) < PARALLEL_MIN_ROWS
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
            _run_lanes(ctx, resolved, sources, masks, group, outputs, one)
        for d in distinct:
            _collect_pairs(ctx, sources[d.scan], masks[d.scan], d)
    if threads > 1:
        lanes.merge_threads(agg_kinds, ts_kinds, counts, accs, tss, iaccs, flags, flag_kinds)
    return _results(resolved, lane_list, distinct, one, n)


def _widest_call(
    resolved: list[_Scan],
    parts: list[tuple[Partition, list[tuple[int, int]]]],
    shares: dict[tuple[int, bytes | None], float] | None = None,
) -> float:
    """About how many rows the widest lane call of the pass reads (one per
    partition and group of scans over the same types; ``_run_lanes``): each
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
    group: _Group,
    outputs: tuple[np.ndarray, ...],
    one: tuple[np.ndarray, ...],
) -> None:
    """The lanes of ``group``: all over the same types, so the same source
    (a lane whose window misses the partition has none: it is skipped).
    ``outputs``: the pass's per-thread outputs (3-d); ``one``: thread 0's
    alone (2-d)."""
    chunk = group.lanes
    src = None
    for ln in chunk:
        own, a, b, _ = sources[ln.scan]
        if a < b:
            if src is None:
                src = own
            elif own is not src:
                raise ValueError("lanes of one group must read the same rows")
    if src is None:
        return
    k_n = len(chunk)
    # the per-lane arguments as rows of two arrays (each row a C array)
    lane_lo, lane_hi, mask_base, val_base = np.zeros((4, k_n), dtype=np.int64)
    has_mask, has_pos = np.zeros((2, k_n), dtype=np.bool_)
    # each array laid out once (by identity), made on first use
    flats: dict[str, _Flat] = {}
    rows_read = 0
    n_rows = len(src)
    for k, ln in enumerate(chunk):
        _, a, b, _ = sources[ln.scan]
        rows = masks[ln.scan]
        mask, positions = rows.mask, rows.positions
        if positions is not None and len(positions) == 0:
            continue  # no row passes
        if a < b and ln.kind in _FOLDS:
            fd = event_field(ctx, ln.red[2], src, a, b)
            if fd.values is None:
                continue  # the column does not exist here: no value to fold
            if len(fd.values) != b - a:
                raise ValueError("a column's values must cover the lane's rows")
            if fd.valid is not None:
                mask = fd.valid if mask is None else (mask & fd.valid)
            if ln.kind in (lanes.IMIN, lanes.IMAX):
                at = _flat(flats, "ivals").add(fd.values.astype(np.int64, copy=False))
            else:
                at = _flat(flats, "vals").add(fd.values.astype(np.float64, copy=False))
            val_base[k] = a - at
        if a >= b:
            continue
        if not 0 <= a <= b <= n_rows:
            raise ValueError("a lane's rows must be its source's")
        if positions is not None:
            at = _flat(flats, "pos").add(positions)
            contact = rows.contact
            assert contact is not None
            if _flat(flats, "pos_contact").add(contact) != at or len(contact) != len(positions):
                raise ValueError("positions and their contacts must be laid out alike")
            lane_lo[k], lane_hi[k] = at, at + len(positions)
            has_pos[k] = True
            rows_read += len(positions)
        else:
            lane_lo[k], lane_hi[k] = a, b
            rows_read += b - a
        if mask is not None:
            if len(mask) != b - a:
                raise ValueError("a lane's mask must cover its rows")
            has_mask[k] = True
            mask_base[k] = a - _flat(flats, "masks").add(mask)
    if rows_read == 0:
        return
    kernel = lanes._scan_lanes
    counts, accs, tss, iaccs, flags = one
    if rows_read >= PARALLEL_MIN_ROWS and outputs[0].shape[0] > 1:
        kernel = lanes._scan_lanes_par
        counts, accs, tss, iaccs, flags = outputs
    # the private kernel, without ``scan_lanes``' checks of every input at
    # every call (a third of a small store's evaluation): the outputs are
    # ``run_scans``' own, made to the kernel's dtypes and shapes; every
    # lane's rows, mask and values are checked above against its source;
    # positions come from the source's own index, within the lane's rows
    # (``postings``).  The kernel still checks every contact against the
    # outputs, and a wrong dtype or layout finds no compiled signature.
    masks_, pos, pos_contact, vals, ivals = [
        _NONE[name] if name not in flats else flats[name].array(dt) for name, dt in _LAID_OUT
    ]
    bad = kernel(
        src.contact, src.ts, lane_lo, lane_hi, group.kind, group.slot, has_mask, mask_base,
        masks_, has_pos, pos, pos_contact, val_base, vals, ivals, counts, accs, tss, iaccs, flags,
    )  # fmt: skip
    if bad:
        raise ValueError(f"{bad} rows have a contact index outside the output arrays")


_FOLDS = frozenset(kd for kd in lanes.KINDS.values() if lanes.folds(kd))


def _flat(flats: dict[str, _Flat], name: str) -> _Flat:
    hit = flats.get(name)
    if hit is None:
        hit = flats[name] = _Flat()
    return hit


# the arrays ``_run_lanes`` lays out, each empty when no lane reads it
_LAID_OUT = (
    ("masks", np.bool_),
    ("pos", np.int32),
    ("pos_contact", np.int32),
    ("vals", np.float64),
    ("ivals", np.int64),
)
_NONE = {name: np.zeros(0, dtype=dt) for name, dt in _LAID_OUT}


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
