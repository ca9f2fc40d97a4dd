"""Row selections for string equality predicates, from a per-column index.

``product_name = "Red Shoes"`` passes a few rows in thousands: testing every
row of the window (a mask) and then compacting it costs the window's rows at
every evaluation.  A partition's rows grouped by the column's codes
(``kernels.postings``) give the passing rows directly: the groups of the
codes the test accepts, cut to the window by binary search, at a cost in the
passing rows only.  The index is built on first use and kept per partition
object (partitions are immutable; the type selections of ``typeindex`` are
partitions too, so an index over a type's rows serves typed scans), guarded
by a weak reference and dropped with the partition.  Memory: 8 bytes per
present row of the column (its row number and contact).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from audience.compiler import plan as p
from audience.engine.context import EvalContext
from audience.engine.kernels.postings import group_rows
from audience.snapshot import Partition, dictionary_key

# at most this many accepted codes: more groups cost a merge (a sort)
MAX_CODES = 16
_RESERVED = ("type", "ts", "id", "contact_id")


@dataclass(frozen=True)
class Postings:
    start: np.ndarray  # int64, one more than the codes
    rows: np.ndarray  # int32 row numbers grouped by code, ascending in a group
    contact: np.ndarray  # int32, the contact of each of ``rows`` (read in order)

    def select(self, codes: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows in ``[a, b)`` with one of ``codes``, ascending (int32),
        and their contacts."""
        parts: list[tuple[int, int]] = []
        n_codes = len(self.start) - 1
        for c in codes.tolist():
            if not 0 <= c < n_codes:
                continue
            lo, hi = int(self.start[c]), int(self.start[c + 1])
            group = self.rows[lo:hi]
            if len(group) == 0:
                continue
            i = 0 if group[0] >= a else int(np.searchsorted(group, a, "left"))
            j = len(group) if group[-1] < b else int(np.searchsorted(group, b, "left"))
            if i < j:
                parts.append((lo + i, lo + j))
        if not parts:
            return _EMPTY, _EMPTY
        if len(parts) == 1:
            ((i, j),) = parts
            return self.rows[i:j], self.contact[i:j]
        rows = np.concatenate([self.rows[i:j] for i, j in parts])
        order = np.argsort(rows, kind="stable")
        return rows[order], np.concatenate([self.contact[i:j] for i, j in parts])[order]


_EMPTY = np.zeros(0, dtype=np.int32)
_cache: dict[tuple[int, str], tuple[weakref.ref[Partition], Postings]] = {}
_lock = threading.RLock()  # reentrant: a finalizer may run inside ``with _lock``


def postings(part: Partition, name: str) -> Postings | None:
    """The index of ``part``'s code column ``name`` (None: no such column)."""
    col = part.columns.get(name)
    if col is None or col.kind != "code":
        return None
    key = (id(part), name)
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit[0]() is part:
        return hit[1]
    n_codes = int(col.values.max()) + 1 if len(col.values) else 0
    start, rows = group_rows(col.values, col.valid, max(n_codes, 0))
    built = Postings(start, rows, part.contact[rows])
    ref = weakref.ref(part)
    with _lock:
        _cache[key] = (ref, built)
    weakref.finalize(part, _drop, key, ref)
    return built


def _drop(key: tuple[int, str], ref: weakref.ref[Partition]) -> None:
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] is ref:
            del _cache[key]


def accepted_codes(ctx: EvalContext, pred: p.PredNode | None) -> tuple[str, np.ndarray] | None:
    """``(column, codes)`` when ``pred`` is one string test on an event code
    column that accepts at most ``MAX_CODES`` dictionary values (a missing
    value never passes it); None when it is not such a test."""
    if not isinstance(pred, p.PLeaf) or not isinstance(pred.test, p.StrTest):
        return None
    f = pred.field
    if f.scope != "event" or f.kind != "string" or f.name in _RESERVED:
        return None
    lut = ctx.luts.get(ctx.dictionary(dictionary_key("event", f.name)), pred.test)
    codes = np.flatnonzero(lut)
    if len(codes) > MAX_CODES:
        return None
    return f.name, codes
