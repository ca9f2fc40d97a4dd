"""Event scans: prune partitions by time, slice each one by binary search on
its sorted ``ts``, filter rows (type table, predicate), and scatter them into
per-contact reductions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from audience.compiler import plan as p
from audience.compiler.context import EvalContext
from audience.compiler.kernels import filters, reduce
from audience.compiler.passes.resolve_time import INT64_MIN, window_range
from audience.compiler.predicates import event_field, event_mask
from audience.compiler.typeindex import dense, type_rows
from audience.snapshot import Partition

# ("count",) | ("agg", func, FieldRef) | ("ts", "last" | "first")
Reduction = tuple[Any, ...]


def row_range(part: Partition, lo: int, hi: int) -> tuple[int, int]:
    """The rows ``[a, b)`` of a ts-sorted partition with ``lo <= ts <= hi``; empty
    (``a >= b``) when its min/max show it holds none, without reading ``ts``."""
    if len(part) == 0 or lo > hi or part.max_ts < lo or part.min_ts > hi:
        return 0, 0
    a = 0 if part.min_ts >= lo else int(np.searchsorted(part.ts, lo, "left"))
    b = len(part) if part.max_ts <= hi else int(np.searchsorted(part.ts, hi, "right"))
    return a, b


def filter_range(ctx: EvalContext, flt: p.RowFilter) -> tuple[int, int]:
    if flt.window is None:
        return INT64_MIN, ctx.now_ms
    return window_range(flt.window, ctx.now_ms)


def _type_table(ctx: EvalContext, types: tuple[str, ...]) -> np.ndarray | None:
    """Bool table by type code; None when the snapshot has none of the types."""
    et = ctx.snapshot.event_types
    table = np.zeros(len(et), dtype=np.bool_)
    for t in types:
        code = et.code(t)
        if code >= 0:
            table[code] = True
    return table if table.any() else None


def filtered_slices(
    ctx: EvalContext, flt: p.RowFilter, lo: int, hi: int
) -> Iterator[tuple[Partition, int, int, np.ndarray | None]]:
    """``(partition, a, b, mask)`` per partition with rows in [lo, hi]; the
    mask (None: every row in [a, b) passes) applies the types and predicate.
    Counts partitions read and skipped into ``ctx.stats``."""
    stats = ctx.stats
    stats.setdefault("partitions_read", 0)
    stats.setdefault("partitions_skipped", 0)
    table = None
    if flt.types is not None:
        table = _type_table(ctx, flt.types)
        if table is None:
            stats["partitions_skipped"] += len(ctx.snapshot.partitions)
            return
    for part in ctx.snapshot.partitions:
        a, b = row_range(part, lo, hi)
        if a >= b:
            stats["partitions_skipped"] += 1
            continue
        stats["partitions_read"] += 1
        mask = None if table is None else filters.lut_mask(part.type[a:b], table)
        if flt.pred is not None:
            pm = event_mask(ctx, flt.pred, part, a, b)
            mask = pm if mask is None else (mask & pm)
        yield part, a, b, mask


class _Acc:
    """The per-contact output arrays of one reduction."""

    def __init__(self, red: Reduction, n: int) -> None:
        self.red = red
        self.count = np.zeros(n, dtype=np.int64)
        # min/max of int-like values stay exact in int64 (float64: 2**53)
        exact = red[0] == "agg" and red[1] in ("min", "max") and red[2].kind != "float"
        self.acc = np.zeros(n, dtype=np.int64 if exact else np.float64)
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []
        if red[0] == "ts":
            fill = reduce.INT64_MIN if red[1] == "last" else reduce.INT64_MAX
            self.ts = np.full(n, fill, dtype=np.int64)

    def add(
        self, ctx: EvalContext, part: Partition, a: int, b: int, mask: np.ndarray | None
    ) -> None:
        contact = part.contact[a:b]
        kind = self.red[0]
        if kind == "count":
            reduce.count_into(contact, mask, self.count)
        elif kind == "ts":
            reduce.ts_extreme_into(contact, mask, part.ts[a:b], self.red[1] == "last", self.ts)
        else:
            func, f = self.red[1], self.red[2]
            fd = event_field(ctx, f, part, a, b)
            if fd.values is None:
                return
            if func == "count_distinct":
                self._pairs(contact, mask, fd)
            else:
                op = "sum" if func == "avg" else func
                reduce.agg_into(contact, mask, fd.values, fd.valid, op, self.acc, self.count)

    def _pairs(self, contact: np.ndarray, mask: np.ndarray | None, fd: Any) -> None:
        keep = np.ones(len(contact), dtype=np.bool_) if mask is None else mask.copy()
        if fd.valid is not None:
            keep &= fd.valid
        if fd.offsets is not None:
            # a list counts its distinct elements
            contacts, elements = list_elements(
                contact[keep], fd.offsets[:-1][keep], np.diff(fd.offsets)[keep], fd.list_codes
            )
            self.pairs.append((contacts, elements.astype(np.int64)))
            return
        elif fd.values.dtype == np.float64:
            vals = fd.values
        else:
            vals = fd.values.astype(np.int64)
        self.pairs.append((contact[keep], vals[keep]))

    def result(self, n: int) -> dict[str, np.ndarray]:
        kind = self.red[0]
        if kind == "count":
            return {"count": self.count}
        if kind == "ts":
            return {"ts": self.ts}
        if self.red[1] == "count_distinct":
            if not self.pairs:
                return {"count": np.zeros(n, dtype=np.int64)}
            c = np.concatenate([x for x, _ in self.pairs])
            v = np.concatenate([y for _, y in self.pairs])
            if v.dtype != np.float64:
                v = v.astype(np.int64)
            return {"count": reduce.distinct_counts(c, v, n)}
        return {"acc": self.acc, "n": self.count}


def list_elements(
    contact: np.ndarray, starts: np.ndarray, lengths: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(contact, element code) for every element of the given list rows."""
    lengths = lengths.astype(np.int64)
    total = int(lengths.sum())
    row_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = np.arange(total, dtype=np.int64) - row_start + np.repeat(starts.astype(np.int64), lengths)
    return np.repeat(contact, lengths).astype(np.int32), codes[pos]


def run_scan(
    ctx: EvalContext, flt: p.RowFilter, reductions: tuple[Reduction, ...]
) -> dict[Reduction, dict[str, np.ndarray]]:
    """Every reduction of ``reductions`` over the rows of ``flt``, in one pass
    over the partitions (the filter mask is computed once per partition)."""
    n = ctx.snapshot.n_contacts
    lo, hi = filter_range(ctx, flt)
    ctx.stats["range"] = [lo, hi]
    accs = [_Acc(r, n) for r in reductions]
    for part, a, b, mask in filtered_slices(ctx, flt, lo, hi):
        for acc in accs:
            acc.add(ctx, part, a, b, mask)
    return {acc.red: acc.result(n) for acc in accs}


def filtered_rows(
    ctx: EvalContext, flt: p.RowFilter, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """(contact, ts) of the rows passing ``flt`` within [lo, hi], in partition
    order (so in ts order when the partitions are)."""
    cs: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    if flt.types is not None:
        typed = _typed_rows(ctx, flt, lo, hi)
        cs, ts = [c for c, _ in typed], [t for _, t in typed]
    else:
        for part, a, b, mask in filtered_slices(ctx, flt, lo, hi):
            c, t = part.contact[a:b], part.ts[a:b]
            cs.append(c if mask is None else c[mask])
            ts.append(t if mask is None else t[mask])
    if not cs:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    return np.concatenate(cs).astype(np.int32, copy=False), np.concatenate(ts)


def _typed_rows(
    ctx: EvalContext, flt: p.RowFilter, lo: int, hi: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``filtered_rows`` of a typed filter, per partition: reads only the rows
    of its types (``typeindex``); the predicate is tested on those rows only."""
    stats = ctx.stats
    stats.setdefault("partitions_read", 0)
    stats.setdefault("partitions_skipped", 0)
    assert flt.types is not None
    table = _type_table(ctx, flt.types)
    if table is None:
        stats["partitions_skipped"] += len(ctx.snapshot.partitions)
        return []
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for part in ctx.snapshot.partitions:
        a, b = row_range(part, lo, hi)
        if a >= b:
            stats["partitions_skipped"] += 1
            continue
        stats["partitions_read"] += 1
        if dense(part, table):
            # most rows have the types: a type mask, not a selection
            keep = filters.lut_mask(part.type[a:b], table)
            if flt.pred is not None:
                keep &= event_mask(ctx, flt.pred, part, a, b)
            out.append((part.contact[a:b][keep], part.ts[a:b][keep]))
            continue
        sub = type_rows(part, table).partition
        i, j = sub_range = (
            int(np.searchsorted(sub.ts, lo, "left")),
            int(np.searchsorted(sub.ts, hi, "right")),
        )
        c, t = sub.contact[i:j], sub.ts[i:j]
        if flt.pred is not None and i < j:
            keep = event_mask(ctx, flt.pred, sub, *sub_range)
            c, t = c[keep], t[keep]
        out.append((c, t))
    return out
