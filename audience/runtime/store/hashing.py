"""64-bit hashes of strings and sorted runs of them, for exact lookups that
need no per-call hash table: the duplicate index (dedup.py) and the big
dictionaries (dictionaries.py).  A hash match is only ever a candidate: the
callers compare the strings themselves."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from audience import lazy_compute as pc
from audience.engine.kernels.config import NJIT, njit

# (sorted uint64 hashes, a payload per hash: a position or a code)
Run = tuple[np.ndarray, np.ndarray]


@njit(**NJIT)
def _fmix(h: np.uint64) -> np.uint64:  # pragma: no cover
    # The murmur3 finaliser: spreads the bits, and is a bijection.
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


@njit(**NJIT)
def _hash_kernel(
    offsets: np.ndarray, data: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover
    # FNV-1a over the bytes, then the murmur3 finaliser.
    prime = np.uint64(1099511628211)
    for i in range(out.shape[0]):
        h = np.uint64(14695981039346656037)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * prime
        out[i] = _fmix(h)


def hash_ids(ids: pa.Array) -> np.ndarray:
    """uint64 hash of each string (nulls hash as the empty string)."""
    if not pa.types.is_string(ids.type):
        ids = pc.cast(ids, pa.string())
    n = len(ids)
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    offsets, data = string_parts(ids)
    _hash_kernel(offsets, data, out)
    return out


@njit(**NJIT)
def _integer_kernel(
    offsets: np.ndarray, data: np.ndarray, skip: bool, out: np.ndarray, ok: np.ndarray
) -> bool:  # pragma: no cover
    # The int64 each string writes canonically (optional '-', no leading zero,
    # no "-0", in range), mixed by the murmur3 finaliser, a bijection: equal
    # keys are equal integers, so equal strings.  Not one: ok[i] False, and
    # unless ``skip``, False returned at once.
    ten, zero = np.uint64(10), np.uint64(0)
    for i in range(out.shape[0]):
        s, e = offsets[i], offsets[i + 1]
        ok[i] = False
        neg = s < e and data[s] == 45
        p = s + 1 if neg else s
        good = p < e and e - p <= 19 and not (data[p] == 48 and (e - p > 1 or neg))
        u = zero
        k = p
        while good and k < e:
            c = data[k]
            good = c >= 48 and c <= 57
            u = u * ten + np.uint64(c - 48)
            k += 1
        limit = np.uint64(9223372036854775808) if neg else np.uint64(9223372036854775807)
        if not good or u > limit:
            if skip:
                continue
            return False
        out[i] = _fmix(zero - u if neg else u)
        ok[i] = True
    return True


def integer_keys(ids: pa.Array, *, skip: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """(a uint64 key per string, whether it is one): the key of a string that
    writes an int64 canonically is exact (two such strings share a key only
    when they are equal), so a lookup by it needs no string comparison.  None
    when a string is not one, unless ``skip`` (then ok is False for it)."""
    n = len(ids)
    out = np.zeros(n, dtype=np.uint64)
    ok = np.zeros(n, dtype=np.bool_)
    if n == 0:
        return out, ok
    offsets, data = string_parts(ids)
    if not _integer_kernel(offsets, data, skip, out, ok):
        return None
    return out, ok


@njit(**NJIT)
def _mix_kernel(values: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    for i in range(values.shape[0]):
        out[i] = _fmix(np.uint64(values[i]))


def int64_dictionary(ints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the rows that bring each distinct value, in order of first
    appearance; each row's int32 index into them) of an int64 array: what
    Arrow's ``dictionary_encode`` gives, from a table of exact keys (the
    murmur3 finaliser is a bijection, the key of ``integer_keys``)."""
    keys = np.empty(len(ints), dtype=np.uint64)
    _mix_kernel(ints, keys)
    codes, intro = HashTable().encode(keys, 0)
    return intro, codes


def string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int32 offsets, uint8 data) of a string array, as numpy views."""
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


def sort_order(h: np.ndarray) -> np.ndarray:
    """``argsort(h)``, stable.  The rows are sorted as one uint64 key each,
    the hash's high bits above the row number: numpy sorts plain uint64
    with SIMD, about 6x faster than its argsort (half a million hashes: 8
    against 55 ms).  That orders by the high bits, then by row; rows whose
    high bits are equal (rare: a duplicate id, or one pair in hundreds of
    batches) are then put in (hash, row) order."""
    n = len(h)
    bits = max(n - 1, 1).bit_length()
    low = np.uint64((1 << bits) - 1)
    keys = (h & ~low) | np.arange(n, dtype=np.uint64)
    keys.sort()
    order = (keys & low).astype(np.int64)
    top = keys & ~low
    eq = top[1:] == top[:-1]
    if eq.any():
        hs = h[order]
        members = np.zeros(len(h), dtype=bool)
        members[1:] |= eq
        members[:-1] |= eq
        idx = np.flatnonzero(members)
        # Sorting the members by (hash, row) keeps the hashes sorted.
        sub = np.lexsort((order[idx], hs[idx]))
        order[idx] = order[idx][sub]
    return order


@njit(**NJIT)
def _merge_kernel(
    ah: np.ndarray, av: np.ndarray, bh: np.ndarray, bv: np.ndarray, oh: np.ndarray, ov: np.ndarray
) -> None:  # pragma: no cover
    # Branch-free while both runs last (which run is next is a coin flip on
    # random hashes: a branch mispredicts half the time), then the tail.
    na, nb = ah.shape[0], bh.shape[0]
    i = j = k = np.int64(0)
    while i < na and j < nb:
        x = ah[i]
        y = bh[j]
        a = x <= y
        oh[k] = x if a else y
        ov[k] = av[i] if a else bv[j]
        i += np.int64(a)
        j += np.int64(1) - np.int64(a)
        k += 1
    while i < na:
        oh[k] = ah[i]
        ov[k] = av[i]
        i += 1
        k += 1
    while j < nb:
        oh[k] = bh[j]
        ov[k] = bv[j]
        j += 1
        k += 1


def merge_runs(a: Run, b: Run) -> Run:
    """Two sorted runs merged in linear time (b's entries after a's equal ones)."""
    n = len(a[0]) + len(b[0])
    h = np.empty(n, dtype=np.uint64)
    v = np.empty(n, dtype=a[1].dtype)
    _merge_kernel(a[0], a[1], b[0], b[1].astype(a[1].dtype, copy=False), h, v)
    return h, v


# ------------------------------------------------------------ hash table
@njit(**NJIT)
def _table_put(
    keys: np.ndarray,
    vals: np.ndarray,
    h: np.ndarray,
    codes: np.ndarray,
    start: int,
    out: np.ndarray,
    intro: np.ndarray,
) -> int:  # pragma: no cover
    # Each row's code after its insert, so that one probe answers a find too:
    # a hash already present keeps its first code; a new one gets the row's
    # code (start < 0) or the next code from ``start``, intro[k] being the
    # row that brought code start + k.  The number of hashes inserted.
    mask = np.uint64(len(keys) - 1)
    added = 0
    for i in range(h.shape[0]):
        j = h[i] & mask
        while vals[j] != -1 and keys[j] != h[i]:
            j = (j + np.uint64(1)) & mask
        if vals[j] == -1:
            keys[j] = h[i]
            if start < 0:
                vals[j] = codes[i]
            else:
                vals[j] = start + added
                intro[added] = i
            added += 1
        out[i] = vals[j]
    return added


@njit(**NJIT)
def _table_find(
    keys: np.ndarray, vals: np.ndarray, h: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover
    mask = np.uint64(len(keys) - 1)
    for i in range(h.shape[0]):
        j = h[i] & mask
        out[i] = -1
        while vals[j] != -1:
            if keys[j] == h[i]:
                out[i] = vals[j]
                break
            j = (j + np.uint64(1)) & mask


class HashTable:
    """Open addressing from a 64-bit hash to an int32 code (the first code
    given for that hash), at most 70% full.  ``find`` gives -1 for an absent
    hash; a code found is only a candidate until the strings are compared."""

    def __init__(self) -> None:
        self.keys = np.zeros(1024, dtype=np.uint64)
        self.vals = np.full(1024, -1, dtype=np.int32)
        self.count = 0

    def insert(self, h: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Each hash not in the table gets its row's code; returns the code
        each hash holds afterwards: the row's own where its hash was new,
        else the first code given for it."""
        return self._put(h, codes.astype(np.int32, copy=False), -1)[0]

    def encode(self, h: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        """(each row's code, the rows that brought new codes): a hash in the
        table gives its code, a new one the next code from ``start`` (in
        order of first appearance), inserted.  One probe per row."""
        return self._put(h, np.empty(0, dtype=np.int32), start)

    def _put(self, h: np.ndarray, codes: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        self._grow(len(h))
        out = np.empty(len(h), dtype=np.int32)
        intro = np.empty(len(h) if start >= 0 else 0, dtype=np.int32)
        added = int(_table_put(self.keys, self.vals, h, codes, start, out, intro))
        self.count += added
        return out, intro[:added]

    def _grow(self, more: int) -> None:
        """Room for ``more`` hashes with the table at most 70% full.  (Half
        full at most cost a 2.5M-value dictionary twice the memory, and the
        fresh pages of a big table cost more than its longer probe runs.)"""
        if (self.count + more) * 10 <= len(self.keys) * 7:
            return
        size = len(self.keys)
        while (self.count + more) * 10 > size * 7:
            size *= 2
        used = self.vals != -1
        old_keys, old_vals = self.keys[used], self.vals[used]
        self.keys = np.zeros(size, dtype=np.uint64)
        self.vals = np.full(size, -1, dtype=np.int32)
        empty = np.empty(0, dtype=np.int32)
        _table_put(self.keys, self.vals, old_keys, old_vals, -1, np.empty_like(old_vals), empty)

    def find(self, h: np.ndarray) -> np.ndarray:
        out = np.empty(len(h), dtype=np.int32)
        _table_find(self.keys, self.vals, h, out)
        return out
