"""What a program's scan pass needs of the program and of a snapshot,
made once and kept (``ScanPlan``): the scans in step order, their lanes
and slots, and per snapshot their type tables, index codes and lane groups,
so that an evaluation pays for its window and its rows alone."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from audience.compiler import plan as p
from audience.compiler.physical import Reduction
from audience.engine import counting
from audience.engine.context import EvalContext
from audience.engine.kernels import lanes
from audience.engine.postings import accepted_codes
from audience.engine.scan import filter_range, type_table
from audience.snapshot import Snapshot

# a ``sum`` is only ever compared (a sum over no events is 0): no value count
_AGG_KINDS = {"sum": lanes.TOTAL, "avg": lanes.SUM, "min": lanes.MIN, "max": lanes.MAX}
# min/max of every kind but float keep their values exactly, in int64
_INT_KINDS = {"min": lanes.IMIN, "max": lanes.IMAX}


@dataclass
class Scan:
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
class Lane:
    scan: int
    red: Reduction
    kind: int
    slot: int


class ScanPlan:
    """The scan steps of one program, in step order, with what their pass
    needs that depends on the program and the snapshot only (``Prepared``:
    type tables, index codes, lanes and their slots), kept per snapshot so
    that an evaluation pays for its window and its rows alone.  A snapshot
    is one version of a store (a new version is a new snapshot object), so
    keeping by snapshot object is keeping by version."""

    # live snapshots kept per program: every shard's in a process that
    # evaluates many (a sharded node's own evaluation), and a version more
    # while a query on the previous one finishes
    KEEP = 256

    def __init__(
        self,
        scans: Mapping[int, tuple[p.RowFilter, tuple[Reduction, ...]]],
        bounds: Mapping[int, int | None] | None = None,
    ) -> None:
        self.order = sorted(scans)
        self.scans = [scans[i] for i in self.order]
        given = bounds or {}
        self.bounds = {k: given.get(i) for k, i in enumerate(self.order)}
        # by id(snapshot), guarded by a weak reference (a recycled id)
        self._kept: dict[int, tuple[weakref.ref[Snapshot], Prepared]] = {}
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

    def prepared(self, ctx: EvalContext) -> Prepared:
        snap = ctx.snapshot
        key = id(snap)
        with self._lock:
            hit = self._kept.get(key)
        if hit is not None and hit[0]() is snap:
            return hit[1]
        prep = prepare(ctx, self.scans, self.bounds)
        with self._lock:
            kept = self._kept
            kept.pop(key, None)  # (a dead snapshot's, its id recycled)
            # a dead snapshot's go as soon as a new one comes (a server's store
            # makes a version per ingest), then the oldest beyond ``KEEP``
            for k in [k for k, (r, _) in kept.items() if r() is None]:
                del kept[k]
            kept[key] = (weakref.ref(snap), prep)
            while len(kept) > self.KEEP:
                del kept[next(iter(kept))]
        return prep


@dataclass(frozen=True)
class _Static:
    """What a scan's pass needs of one snapshot, whatever ``now``."""

    type_lut: np.ndarray | None
    empty: bool
    key: bytes | None
    indexed: tuple[str, np.ndarray] | None


@dataclass(frozen=True)
class Group:
    """Lanes over the same types (one kernel call per partition), with their
    kinds and slots as the kernel takes them."""

    lanes: list[Lane]
    kind: np.ndarray
    slot: np.ndarray


class Prepared:
    """A pass's plan for one snapshot (``ScanPlan``): never written after
    ``prepare`` but for ``shares``, a cache of ``fused._widest_call``'s type shares
    by (partition index, types), each computed once (a dict's item writes
    are atomic, and a value is the same whoever writes it)."""

    def __init__(
        self,
        statics: list[_Static],
        lane_list: list[Lane],
        distinct: list[tuple[int, Reduction]],
        groups: list[Group],
        same_pred: list[int],
    ) -> None:
        self.statics = statics
        self.same_pred = same_pred
        self.n_lanes = [len(chunk) for chunk in _lanes_by_scan(lane_list, len(statics))]
        self.lane_list = lane_list
        self.distinct = distinct
        self.groups = groups
        # by slot: the counted aggregates, then the totals (``plan_lanes``)
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
        """A bound of ``fused._widest_call`` over ``snapshot`` (whatever the windows):
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


def _lanes_by_scan(lane_list: list[Lane], n_scans: int) -> list[list[Lane]]:
    out: list[list[Lane]] = [[] for _ in range(n_scans)]
    for ln in lane_list:
        out[ln.scan].append(ln)
    return out


def prepare(
    ctx: EvalContext,
    scans: list[tuple[p.RowFilter, tuple[Reduction, ...]]],
    bounds: Mapping[int, int | None],
) -> Prepared:
    statics: list[_Static] = []
    for flt, _ in scans:
        lut = None if flt.types is None else type_table(ctx, flt.types)
        empty = lut is not None and not lut.any()
        key = None if lut is None else lut.tobytes()
        statics.append(_Static(lut, empty, key, accepted_codes(ctx, flt.pred)))
    lane_list, distinct = plan_lanes([reds for _, reds in scans], bounds)
    # lanes over the same types read the same selected rows: one pass per group
    by_types: dict[bytes | None, list[Lane]] = {}
    for ln in lane_list:
        by_types.setdefault(statics[ln.scan].key, []).append(ln)
    groups = [
        Group(
            chunk,
            np.array([ln.kind for ln in chunk], dtype=np.int64),
            np.array([ln.slot for ln in chunk], dtype=np.int64),
        )
        for chunk in by_types.values()
    ]
    preds = [flt.pred for flt, _ in scans]
    same = [preds.index(pred) for pred in preds]  # by equality, once per snapshot
    return Prepared(statics, lane_list, distinct, groups, same)


def plan_lanes(
    reductions: list[tuple[Reduction, ...]], bounds: Mapping[int, int | None]
) -> tuple[list[Lane], list[tuple[int, Reduction]]]:
    """A lane per (scan, reduction); slots: aggregates first in ``counts``
    (their value counts share the slot number of ``accs``), then counts;
    totals (no value count) take the ``accs`` slots after the aggregates';
    ts lanes and the byte lanes (exists, count8) number their own slots."""
    out: list[Lane] = []
    distinct: list[tuple[int, Reduction]] = []
    for si, reds in enumerate(reductions):
        for red in reds:
            if red[0] == "agg" and red[1] == "count_distinct":
                distinct.append((si, red))
            elif red[0] == "agg":
                exact = red[1] in _INT_KINDS and red[2].kind != "float"
                out.append(Lane(si, red, (_INT_KINDS if exact else _AGG_KINDS)[red[1]], 0))
            elif red[0] == "ts":
                out.append(Lane(si, red, lanes.NEWEST if red[1] == "last" else lanes.OLDEST, 0))
            else:
                kind = counting.count_kind(bounds[si]) if si in bounds else lanes.COUNT
                out.append(Lane(si, red, kind, 0))
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
