"""The row arithmetic every scan shares, and the rows a sequence reads.

A partition's rows are sorted by ``ts``: the rows of a time range are a slice
found by binary search (``row_range``), and a partition whose min/max miss the
range is not read at all.  Counts and aggregates come from the fused pass
(``fused``); a sequence (``then``) needs the passing rows themselves, in time
order (``filtered_rows``)."""

from __future__ import annotations

import numpy as np

from audience.compiler import plan as p
from audience.engine.context import EvalContext
from audience.engine.kernels import filters
from audience.engine.predicates import event_mask
from audience.engine.resolve_time import INT64_MIN, window_range
from audience.engine.typeindex import dense, type_rows
from audience.snapshot import Partition


def row_range(part: Partition, lo: int, hi: int) -> tuple[int, int]:
    """The rows ``[a, b)`` of a ts-sorted partition with ``lo <= ts <= hi``; empty
    (``a >= b``) when its min/max show it holds none, without reading ``ts``."""
    if len(part) == 0 or lo > hi or part.max_ts < lo or part.min_ts > hi:
        return 0, 0
    # (the method, not ``np.searchsorted``: a scan calls this per partition
    # at every evaluation, and the function's dispatch cost as much again)
    a = 0 if part.min_ts >= lo else int(part.ts.searchsorted(lo, "left"))
    b = len(part) if part.max_ts <= hi else int(part.ts.searchsorted(hi, "right"))
    return a, b


def filter_range(ctx: EvalContext, flt: p.RowFilter) -> tuple[int, int]:
    if flt.window is None:
        return INT64_MIN, ctx.now_ms
    return window_range(flt.window, ctx.now_ms)


def type_table(ctx: EvalContext, types: tuple[str, ...]) -> np.ndarray:
    """Bool table by type code: the types of ``types`` the snapshot has (all
    false when it has none of them)."""
    et = ctx.snapshot.event_types
    table = np.zeros(len(et), dtype=np.bool_)
    for t in types:
        code = et.code(t)
        if code >= 0:
            table[code] = True
    return table


def list_elements(
    contact: np.ndarray, starts: np.ndarray, lengths: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(contact, element code) for every element of the given list rows."""
    lengths = lengths.astype(np.int64)
    total = int(lengths.sum())
    row_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = np.arange(total, dtype=np.int64) - row_start + np.repeat(starts.astype(np.int64), lengths)
    return np.repeat(contact, lengths).astype(np.int32), codes[pos]


def filtered_rows(
    ctx: EvalContext, flt: p.RowFilter, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """(contact, ts) of the rows passing ``flt`` within [lo, hi], in partition
    order (so in ts order when the partitions are).  Counts partitions read
    and skipped into ``ctx.stats``."""
    stats = ctx.stats
    stats.setdefault("partitions_read", 0)
    stats.setdefault("partitions_skipped", 0)
    table = None
    if flt.types is not None:
        table = type_table(ctx, flt.types)
        if not table.any():
            stats["partitions_skipped"] += len(ctx.snapshot.partitions)
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    cs: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    for part in ctx.snapshot.partitions:
        a, b = row_range(part, lo, hi)
        if a >= b:
            stats["partitions_skipped"] += 1
            continue
        stats["partitions_read"] += 1
        c, t = _passing_rows(ctx, flt, table, part, (lo, hi), (a, b))
        cs.append(c)
        ts.append(t)
    if not cs:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    return np.concatenate(cs).astype(np.int32, copy=False), np.concatenate(ts)


def _passing_rows(
    ctx: EvalContext,
    flt: p.RowFilter,
    table: np.ndarray | None,
    part: Partition,
    span: tuple[int, int],
    rows: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """(contact, ts) of the rows ``rows`` of ``part`` (those in the time range
    ``span``) that have the types of ``table`` (None: any) and pass the
    predicate.  Rare types are read from their selection (``typeindex``), so
    the predicate is tested on their rows only."""
    a, b = rows
    if table is not None and not dense(part, table):
        part, table = type_rows(part, table).partition, None
        a = int(np.searchsorted(part.ts, span[0], "left"))
        b = int(np.searchsorted(part.ts, span[1], "right"))
    c, t = part.contact[a:b], part.ts[a:b]
    # most rows have the types (or any type will do): a mask, not a selection
    keep = None if table is None else filters.lut_mask(part.type[a:b], table)
    if flt.pred is not None and a < b:
        found = event_mask(ctx, flt.pred, part, a, b)
        keep = found if keep is None else (keep & found)
    if keep is None:
        return c, t
    return c[keep], t[keep]
