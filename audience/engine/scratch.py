"""Per-contact work arrays kept between the evaluations of a snapshot.

A fused scan folds into arrays of one slot per contact and thread (tens of
MB at millions of contacts), used only within one evaluation.  Allocated
anew each time, they are mapped by the C allocator and every page is faulted
in again at each evaluation (with glibc, arrays past its mmap threshold,
which never exceeds 32 MB, so no allocator setting fixes the largest): that
cost as much as the scan itself, and it varied with what the process had
freed before.  Each snapshot has a small pool instead: an evaluation leases
its arrays (``Lease``) and gives them back when it ends; concurrent
evaluations never share one, and nothing leased outlives the evaluation (its
answer is always a fresh array).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

from audience.snapshot import Snapshot

# smaller arrays come from the allocator's heap, already cheap to reuse
MIN_POOLED_BYTES = 1 << 20
# free arrays kept per shape and type (two: an evaluation racing another
# rarely needs a third)
KEEP = 2

_Key = tuple[tuple[int, ...], str]


class ScratchPool:
    """The free work arrays of one snapshot, by shape and type."""

    def __init__(self) -> None:
        self._free: dict[_Key, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A free array of ``shape`` and ``dtype`` (its contents are stale),
        or a new one."""
        key = (shape, np.dtype(dtype).str)
        with self._lock:
            free = self._free.get(key)
            if free:
                return free.pop()
        return np.empty(shape, dtype=dtype)

    def give(self, arr: np.ndarray) -> None:
        key = (arr.shape, arr.dtype.str)
        with self._lock:
            free = self._free.setdefault(key, [])
            if len(free) < KEEP and not any(a is arr for a in free):
                free.append(arr)

    def free_arrays(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._free.values())


# per snapshot: (its weak reference, its pool); like the universes of
# ``engine.context``, by id, as a snapshot is not hashable
_pools: dict[int, tuple[weakref.ref[Snapshot], ScratchPool]] = {}
_lock = threading.RLock()  # reentrant: a finalizer may run inside ``with _lock``


def pool_of(snapshot: Snapshot) -> ScratchPool:
    key = id(snapshot)
    with _lock:
        hit = _pools.get(key)
        if hit is not None and hit[0]() is snapshot:
            return hit[1]
        ref = weakref.ref(snapshot)
        pool = ScratchPool()
        _pools[key] = (ref, pool)
    weakref.finalize(snapshot, _drop, key, ref)
    return pool


def _drop(key: int, ref: weakref.ref[Snapshot]) -> None:
    with _lock:
        hit = _pools.get(key)
        if hit is not None and hit[0] is ref:
            del _pools[key]


class Lease:
    """The work arrays one evaluation holds; ``release`` gives them back to
    the snapshot's pool (after it, the evaluation must not read them)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._pool: ScratchPool | None = None
        self._held: list[np.ndarray] = []

    def empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An array of ``shape`` (``np.empty``: stale contents), from the pool
        when it is big enough to be worth keeping."""
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if nbytes < MIN_POOLED_BYTES:
            return np.empty(shape, dtype=dtype)
        if self._pool is None:
            self._pool = pool_of(self._snapshot)
        arr = self._pool.take(shape, dtype)
        self._held.append(arr)
        return arr

    def full(self, shape: tuple[int, ...], dtype: Any, value: Any = 0) -> np.ndarray:
        """``np.full``, from the pool like ``empty``."""
        arr = self.empty(shape, dtype)
        arr.fill(value)
        return arr

    def release(self) -> None:
        if self._pool is not None:
            for arr in self._held:
                self._pool.give(arr)
        self._held = []
