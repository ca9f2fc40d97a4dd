"""64-bit hashes of strings and sorted runs of them, for exact lookups that
need no per-call hash table: the duplicate index (dedup.py) and the big
dictionaries (dictionaries.py).  A hash match is only ever a candidate: the
callers compare the strings themselves."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

# (sorted uint64 hashes, a payload per hash: a position or a code)
Run = tuple[np.ndarray, np.ndarray]


@njit(cache=True, nogil=True)
def _hash_kernel(
    offsets: np.ndarray, data: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover
    # FNV-1a over the bytes, then the murmur3 finaliser to spread the bits.
    prime = np.uint64(1099511628211)
    for i in range(out.shape[0]):
        h = np.uint64(14695981039346656037)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * prime
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
        out[i] = h


def hash_ids(ids: pa.Array) -> np.ndarray:
    """uint64 hash of each string (nulls hash as the empty string)."""
    if not pa.types.is_string(ids.type):
        ids = pc.cast(ids, pa.string())
    n = len(ids)
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    bufs = ids.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32)[ids.offset : ids.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    _hash_kernel(offsets, data, out)
    return out


def sort_order(h: np.ndarray) -> np.ndarray:
    """``argsort(h)``, stable; the fast unstable sort, then rows of equal
    hashes (rare: duplicates) put back in row order."""
    order = np.argsort(h)
    hs = h[order]
    eq = hs[1:] == hs[:-1]
    if eq.any():
        members = np.zeros(len(h), dtype=bool)
        members[1:] |= eq
        members[:-1] |= eq
        idx = np.flatnonzero(members)
        # Sorting the members by (hash, row) keeps the hashes sorted.
        sub = np.lexsort((order[idx], hs[idx]))
        order[idx] = order[idx][sub]
    return order


def merge_runs(a: Run, b: Run) -> Run:
    """Two sorted runs merged in linear time (each of b's entries lands after a's equal ones)."""
    n = len(a[0]) + len(b[0])
    at = np.searchsorted(a[0], b[0], side="right") + np.arange(len(b[0]))
    from_b = np.zeros(n, dtype=bool)
    from_b[at] = True
    h = np.empty(n, dtype=np.uint64)
    loc = np.empty(n, dtype=a[1].dtype)
    h[at], loc[at] = b
    h[~from_b], loc[~from_b] = a
    return h, loc
