"""Per-partition row selections by event type, built on first use and kept.

A scan of one event type (``purchased`` is 3% of a shop's events) should
cost the rows of that type, not the partition's.  ``TypeRows`` holds, for one
partition and one set of type codes, the row numbers of those types and
their ``contact`` and ``ts`` copied contiguously (still in ts order), so a
reduction walks only them and a window is a binary search on their ``ts``.

Partitions are immutable, so a selection stays right for as long as its
partition lives: it is cached per partition object (by id, guarded by a
weak reference, dropped with the partition).  Memory: 16 bytes per selected
row, at most ``MAX_SETS`` type sets per partition (the oldest set goes first).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from audience.compiler.kernels import filters
from audience.runtime.snapshot import Partition

MAX_SETS = 16


@dataclass(frozen=True)
class TypeRows:
    rows: np.ndarray  # int32 row numbers in the partition, ascending
    contact: np.ndarray  # int32, contact[rows]
    ts: np.ndarray  # int64, ts[rows] (ascending)

    def span(self, lo: int, hi: int) -> tuple[int, int]:
        """Positions ``[i, j)`` of the selected rows with ``lo <= ts <= hi``."""
        i = int(np.searchsorted(self.ts, lo, "left"))
        j = int(np.searchsorted(self.ts, hi, "right"))
        return i, j


_cache: dict[int, tuple[weakref.ref[Partition], OrderedDict[bytes, TypeRows]]] = {}
_lock = threading.Lock()


def _build(part: Partition, lut: np.ndarray) -> TypeRows:
    rows = filters.select_rows(part.type, 0, len(part), lut)
    return TypeRows(
        rows.astype(np.int32),
        np.ascontiguousarray(part.contact[rows]),
        np.ascontiguousarray(part.ts[rows]),
    )


def type_rows(part: Partition, lut: np.ndarray) -> TypeRows:
    """The rows of ``part`` whose type code is True in ``lut``."""
    key = np.flatnonzero(lut).astype(np.int32).tobytes()
    pid = id(part)
    with _lock:
        hit = _cache.get(pid)
        if hit is not None and hit[0]() is part:
            sel = hit[1].get(key)
            if sel is not None:
                hit[1].move_to_end(key)
                return sel
    sel = _build(part, lut)
    with _lock:
        hit = _cache.get(pid)
        if hit is None or hit[0]() is not part:
            hit = (weakref.ref(part), OrderedDict())
            _cache[pid] = hit
            weakref.finalize(part, _drop, pid, hit[0])
        sets = hit[1]
        sets[key] = sel
        while len(sets) > MAX_SETS:
            sets.popitem(last=False)
    return sel


def _drop(pid: int, ref: weakref.ref[Partition]) -> None:
    with _lock:
        hit = _cache.get(pid)
        if hit is not None and hit[0] is ref:
            del _cache[pid]
