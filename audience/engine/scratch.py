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

import math
import threading
import weakref
from typing import Any

import numpy as np

from audience.snapshot import Snapshot

# smaller arrays come from the allocator's heap, already cheap to reuse
MIN_POOLED_BYTES = 1 << 20
# free arrays kept per snapshot, the most recently used: a program leases up
# to five (the fused scan's outputs), and two evaluations may run at once
KEEP = 8
# and, apart from those, per-contact masks (a byte per contact: profile
# tests, combines), so that a program with many rules keeps its scan arrays
KEEP_MASKS = 16


class ScratchPool:
    """The free work arrays of one snapshot."""

    def __init__(self) -> None:
        self._free: list[np.ndarray] = []  # the most recently given last
        # arrays that hold one value everywhere, with their (shape, dtype,
        # value bytes): a user that writes few entries restores those only,
        # instead of filling the whole array at each evaluation
        self._neutral: list[tuple[Any, np.ndarray]] = []
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A free array of ``shape`` and ``dtype`` (its contents are stale),
        or a new one."""
        dt = np.dtype(dtype)
        with self._lock:
            for i in range(len(self._free) - 1, -1, -1):
                arr = self._free[i]
                if arr.shape == shape and arr.dtype == dt:
                    return self._free.pop(i)
        return np.empty(shape, dtype=dt)

    def give(self, arr: np.ndarray) -> None:
        with self._lock:
            if not any(a is arr for a in self._free):
                self._free.append(arr)
                self._free = _newest(self._free)  # the least recently used go

    def take_neutral(self, shape: tuple[int, ...], dtype: Any, value: Any) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` holding ``value`` everywhere: a
        free one given back so (``give_neutral``), or a new one."""
        key = _neutral_key(shape, dtype, value)
        with self._lock:
            for i in range(len(self._neutral) - 1, -1, -1):
                if self._neutral[i][0] == key:
                    return self._neutral.pop(i)[1]
        return np.full(shape, value, dtype=key[1])

    def give_neutral(self, arr: np.ndarray, value: Any) -> None:
        """Give back an array of ``take_neutral`` that holds ``value``
        everywhere again (restored by its user at the entries it wrote)."""
        key = _neutral_key(arr.shape, arr.dtype, value)
        with self._lock:
            if not any(a is arr for _, a in self._neutral):
                self._neutral.append((key, arr))
                del self._neutral[:-KEEP]

    def free_arrays(self) -> list[np.ndarray]:
        with self._lock:
            return list(self._free)


# per snapshot: (its weak reference, its pool); like the universes of
# ``engine.context``, by id, as a snapshot is not hashable
def _neutral_key(
    shape: tuple[int, ...], dtype: Any, value: Any
) -> tuple[Any, np.dtype[Any], bytes]:
    """What makes two neutral arrays interchangeable: shape, dtype and value."""
    dt = np.dtype(dtype)
    return (shape, dt, np.asarray(value, dtype=dt).tobytes())


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


def _newest(free: list[np.ndarray]) -> list[np.ndarray]:
    """The most recently given ``KEEP`` work arrays and ``KEEP_MASKS`` masks
    of ``free`` (oldest first), in their order."""
    left = {True: KEEP_MASKS, False: KEEP}
    kept: list[np.ndarray] = []
    for arr in reversed(free):
        mask = arr.dtype == np.bool_
        if left[mask]:
            left[mask] -= 1
            kept.append(arr)
    kept.reverse()
    return kept


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
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes < MIN_POOLED_BYTES:
            return np.empty(shape, dtype=dtype)
        arr = self._pool_().take(shape, dtype)
        self._held.append(arr)
        return arr

    def full(self, shape: tuple[int, ...], dtype: Any, value: Any = 0) -> np.ndarray:
        """``np.full``, from the pool like ``empty``."""
        arr = self.empty(shape, dtype)
        arr.fill(value)
        return arr

    def neutral(self, shape: tuple[int, ...], dtype: Any, value: Any) -> np.ndarray:
        """An array holding ``value`` everywhere, from the pool; give it back
        with ``restored`` once it holds ``value`` everywhere again (not given
        back, after an error say, it is simply dropped)."""
        return self._pool_().take_neutral(shape, dtype, value)

    def restored(self, arr: np.ndarray, value: Any) -> None:
        self._pool_().give_neutral(arr, value)

    def holds(self, arr: np.ndarray) -> bool:
        """Whether ``arr`` is (a view of) an array of this lease: it goes back
        to the pool at ``release``, so an answer must not be it."""
        base = arr if arr.base is None else arr.base
        return any(a is arr or a is base for a in self._held)

    def _pool_(self) -> ScratchPool:
        if self._pool is None:  # found on first use: a query that pools nothing never looks
            self._pool = pool_of(self._snapshot)
        return self._pool

    def release(self) -> None:
        if self._pool is not None:
            for arr in self._held:
                self._pool.give(arr)
        self._held = []
