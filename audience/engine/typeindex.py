"""Per-partition row selections by event type, built on first use and kept.

A scan of one event type (``purchased`` is 3% of a shop's events) should
cost the rows of that type, not the partition's.  ``TypeRows`` holds, for one
partition and one set of type codes, the row numbers of those types and
their ``contact`` and ``ts`` copied contiguously (still in ts order), so a
reduction walks only them and a window is a binary search on their ``ts``.

A selection is itself a ``Partition`` (``TypeRows.partition``: its rows are
the selected ones, its columns gathered on first use and kept), so masks,
values and reductions run over it unchanged, reading contiguous arrays
instead of gathering scattered rows (a cache miss per row for a rare type).

Partitions are immutable, so a selection stays right for as long as its
partition lives: it is cached per partition object (by id, guarded by a
weak reference, dropped with the partition).  Memory: 16 bytes per selected
row plus the columns read, at most ``MAX_SETS`` type sets per partition
(the oldest set goes first).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from audience.engine.kernels import filters
from audience.snapshot import Column, Partition

MAX_SETS = 16
# a selection holding more than this share of its partition's rows saves
# little reading and costs its copy: such types are filtered by a mask instead
DENSE_SHARE = 0.75


class _Gathered(Mapping[str, Column]):
    """The source partition's columns at the selected rows, gathered on
    first access and kept."""

    def __init__(self, source: Mapping[str, Column], rows: np.ndarray) -> None:
        self._source = source
        self._rows = rows
        self._done: dict[str, Column] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Column:
        with self._lock:
            hit = self._done.get(name)
        if hit is not None:
            return hit
        col = _gather(self._source[name], self._rows)
        with self._lock:
            return self._done.setdefault(name, col)

    def __iter__(self) -> Iterator[str]:
        return iter(self._source)

    def __len__(self) -> int:
        return len(self._source)


def _gather(col: Column, rows: np.ndarray) -> Column:
    valid = None if col.valid is None else col.valid[rows]
    if col.kind != "list":
        return Column(col.kind, col.values[rows], valid)
    assert col.offsets is not None
    starts = col.offsets[:-1][rows].astype(np.int64)
    lengths = col.offsets[1:][rows].astype(np.int64) - starts
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    pos = np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    pos += np.repeat(starts, lengths)
    return Column(col.kind, col.values[pos], valid, offsets)


@dataclass(frozen=True)
class TypeRows:
    rows: np.ndarray  # int32 row numbers in the partition, ascending
    partition: Partition  # the selected rows as a partition (ts ascending)

    @property
    def contact(self) -> np.ndarray:
        return self.partition.contact

    @property
    def ts(self) -> np.ndarray:
        return self.partition.ts

    def span(self, lo: int, hi: int) -> tuple[int, int]:
        """Positions ``[i, j)`` of the selected rows with ``lo <= ts <= hi``."""
        i = int(np.searchsorted(self.ts, lo, "left"))
        j = int(np.searchsorted(self.ts, hi, "right"))
        return i, j


_cache: dict[int, tuple[weakref.ref[Partition], OrderedDict[bytes, TypeRows]]] = {}
# reentrant: a finalizer (``_drop``) may run from garbage collection inside a
# ``with _lock`` block of the same thread
_lock = threading.RLock()


def _build(part: Partition, lut: np.ndarray) -> TypeRows:
    # the type mask kernel, not a row selecting one: a query testing an event
    # string (a code column) loads it anyway, and each kernel a new process
    # loads costs more than this pass (as fast: ~3 ms per million rows; and a
    # byte per row, not the 8 of a selection sized for every row)
    rows = np.flatnonzero(filters.lut_mask(part.type, lut)).astype(np.int32)
    ts = part.ts[rows]
    sub = Partition(
        int(ts[0]) if len(ts) else part.min_ts,
        int(ts[-1]) if len(ts) else part.max_ts,
        ts,
        part.contact[rows],
        part.type[rows],
        _Gathered(part.columns, rows),
    )
    return TypeRows(rows, sub)


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


def type_share(part: Partition, lut: np.ndarray) -> float:
    """The share of ``part``'s rows whose type is in ``lut``."""
    hist = _histogram(part)
    n_lut = min(len(lut), len(hist))
    return int(hist[:n_lut][lut[:n_lut]].sum()) / max(len(part), 1)


def dense(part: Partition, lut: np.ndarray) -> bool:
    """Whether the types of ``lut`` hold more than ``DENSE_SHARE`` of ``part``'s
    rows (then read the partition with a type mask, not a selection)."""
    hist = _histogram(part)
    n_lut = min(len(lut), len(hist))
    share = int(hist[:n_lut][lut[:n_lut]].sum())
    return share > DENSE_SHARE * max(len(part), 1)


# (partition id, lut bytes) -> (weak ref, dense, a weak ref to the selection:
# ``type_rows`` keeps it, and may drop it for newer ones)
_Choice = tuple[weakref.ref[Partition], bool, "weakref.ref[TypeRows] | None"]
_choices: dict[tuple[int, bytes], _Choice] = {}


def typed_source(part: Partition, lut: np.ndarray, key: bytes) -> Partition | None:
    """The partition of the rows of ``part`` with the types of ``lut``
    (``type_rows``), or None when they are ``dense`` there (then read
    ``part`` with a type mask).  ``key`` is ``lut.tobytes()``.  The choice is
    kept per partition: a scan asks for it at every evaluation."""
    ck = (id(part), key)
    with _lock:
        hit = _choices.get(ck)
    if hit is not None and hit[0]() is part:
        if hit[1]:
            return None
        sel = None if hit[2] is None else hit[2]()
        if sel is not None:
            return sel.partition
    is_dense = dense(part, lut)
    sel = None if is_dense else type_rows(part, lut)
    ref = weakref.ref(part)
    with _lock:
        known = hit is not None and hit[0] is ref
        _choices[ck] = (ref, is_dense, None if sel is None else weakref.ref(sel))
    if not known:
        weakref.finalize(part, _drop_choice, ck, ref)
    return None if sel is None else sel.partition


def _drop_choice(ck: tuple[int, bytes], ref: weakref.ref[Partition]) -> None:
    with _lock:
        hit = _choices.get(ck)
        if hit is not None and hit[0] is ref:
            del _choices[ck]


_histograms: dict[int, tuple[weakref.ref[Partition], np.ndarray]] = {}


def _histogram(part: Partition) -> np.ndarray:
    """Rows per type code (codes < 0 left out), kept per partition."""
    pid = id(part)
    with _lock:
        hit = _histograms.get(pid)
    if hit is not None and hit[0]() is part:
        return hit[1]
    codes = part.type[part.type >= 0] if len(part) and part.type.min() < 0 else part.type
    hist = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
    ref = weakref.ref(part)
    with _lock:
        _histograms[pid] = (ref, hist)
    weakref.finalize(part, _drop_histogram, pid, ref)
    return hist


def _drop_histogram(pid: int, ref: weakref.ref[Partition]) -> None:
    with _lock:
        hit = _histograms.get(pid)
        if hit is not None and hit[0] is ref:
            del _histograms[pid]


def _drop(pid: int, ref: weakref.ref[Partition]) -> None:
    with _lock:
        hit = _cache.get(pid)
        if hit is not None and hit[0] is ref:
            del _cache[pid]
