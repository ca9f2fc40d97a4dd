"""Per-contact distinct counts: ``distinct_counts`` from (contact, value) pairs
by sorting them, ``distinct_codes`` from (contact, dictionary code) pairs in
linear time.  Counts, sums, extremes and ts are lanes of the fused pass
(``lanes``); a ts lane starts from the sentinels here (no such event)."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange, types

from audience.engine.kernels._checks import check_1d
from audience.engine.kernels.config import (
    F64,
    I32,
    I64,
    NJIT,
    PARALLEL,
    PARALLEL_MIN_PAIRS,
    njit,
    ro,
    rw,
)

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


def _check_rows(contact: np.ndarray, out: np.ndarray) -> np.ndarray:
    contact = check_1d("contact", contact, (np.int32,))
    if len(contact) and (contact.min() < 0 or contact.max() >= len(out)):
        raise ValueError("contact index outside the output array")
    return contact


@njit([types.void(ro(I32), ro(t), rw(I64)) for t in (I64, F64)], **NJIT)
def _distinct_counts(contact: np.ndarray, value: np.ndarray, out: np.ndarray) -> None:
    for i in range(len(contact)):
        if i == 0 or contact[i] != contact[i - 1] or value[i] != value[i - 1]:
            out[contact[i]] += 1


def distinct_counts(contact: np.ndarray, value: np.ndarray, n_contacts: int) -> np.ndarray:
    """Distinct values per contact from (contact, value) pairs of passing rows
    (any order; sorted here with ``np.lexsort``)."""
    contact = check_1d("contact", contact, (np.int32,))
    value = check_1d("value", value, (np.int64, np.float64), len(contact))
    out = np.zeros(n_contacts, dtype=np.int64)
    contact = _check_rows(contact, out)
    order = np.lexsort((value, contact))
    _distinct_counts(contact[order], value[order], out)
    return out


# ``distinct_codes`` counts in two cache-sized steps (a radix sort): every
# pair goes first to a bucket of 2**shift consecutive contacts (a few hundred
# write heads), then each bucket, small enough for the cache, is counted.
# Scattering pairs straight to their contact's place would miss the cache on
# every write once there are a million contacts.  With few distinct codes (a
# catalogue's products) a pair is packed into one uint32 (the contact within
# its bucket, the code) and a bucket is counted with a bitset of its contacts
# by the codes: a pair whose bit was clear is new.  Otherwise a bucket is
# grouped by contact and each contact's codes are counted with a stamp per
# code.  Thread t buckets its share of the pairs into its own slots of every
# bucket, then counts its own range of buckets.  The phases are plain
# functions, run by a serial and a parallel kernel (a parallel kernel wakes
# the thread pool even for one chunk, which a busy machine makes costly).
DC_SHIFT = 10
# A bucket's bitset of contacts by codes at most this big (the L2 cache holds it).
DC_BITS_MAX = 1 << 20


@njit(**NJIT)
def _dc_count(contact: np.ndarray, lo: int, hi: int, shift: int, cnt: np.ndarray) -> None:
    for i in range(lo, hi):
        cnt[contact[i] >> shift] += 1


@njit(**NJIT)
def _dc_offsets(cnt: np.ndarray, start: np.ndarray, pos: np.ndarray) -> None:
    run = 0
    for b in range(cnt.shape[1]):
        start[b] = run
        for t in range(cnt.shape[0]):
            pos[t, b] = run
            run += cnt[t, b]
    start[cnt.shape[1]] = run


@njit(**NJIT)
def _dc_place(
    contact: np.ndarray,
    code: np.ndarray,
    lo: int,
    hi: int,
    shift: int,
    pos: np.ndarray,
    b_contact: np.ndarray,
    b_code: np.ndarray,
) -> None:
    for i in range(lo, hi):
        c = contact[i]
        b = c >> shift
        p = pos[b]
        b_contact[p] = c
        b_code[p] = code[i]
        pos[b] = p + 1


@njit(**NJIT)
def _dc_pack(
    contact: np.ndarray,
    code: np.ndarray,
    lo: int,
    hi: int,
    shift: int,
    cbits: int,
    pos: np.ndarray,
    packed: np.ndarray,
) -> None:
    low = (1 << shift) - 1
    for i in range(lo, hi):
        c = contact[i]
        b = c >> shift
        p = pos[b]
        packed[p] = np.uint32(((c & low) << cbits) | code[i])
        pos[b] = p + 1


@njit(**NJIT)
def _dc_bits(
    start: np.ndarray,
    packed: np.ndarray,
    lo: int,
    hi: int,
    shift: int,
    cbits: int,
    n_codes: int,
    out: np.ndarray,
) -> None:
    width = 1 << shift
    words = (n_codes + 63) >> 6
    bits = np.zeros(width * words, dtype=np.uint64)
    new = np.zeros(width, dtype=np.int64)
    low = (1 << cbits) - 1
    for b in range(lo, hi):
        s = start[b]
        e = start[b + 1]
        for j in range(s, e):
            x = packed[j]
            k = np.int64(x >> cbits)
            v = np.int64(x & low)
            w = k * words + (v >> 6)
            bit = np.uint64(1) << np.uint64(v & 63)
            old = bits[w]
            new[k] += (old & bit) == 0  # branch-free: the test is a coin flip
            bits[w] = old | bit
        # clear what this bucket set, pair by pair (cheaper than the whole
        # bitset), and hand its counts out
        base = b << shift
        for j in range(s, e):
            x = packed[j]
            k = np.int64(x >> cbits)
            bits[k * words + (np.int64(x & low) >> 6)] = 0
            if new[k]:
                out[base + k] += new[k]
                new[k] = 0


@njit(**NJIT)
def _dc_buckets(
    start: np.ndarray,
    b_contact: np.ndarray,
    b_code: np.ndarray,
    lo: int,
    hi: int,
    shift: int,
    n_codes: int,
    out: np.ndarray,
) -> None:
    width = 1 << shift
    stamp = np.full(n_codes, -1, dtype=np.int64)  # contacts are unique: never reset
    first = np.empty(width + 1, dtype=np.int64)
    head = np.empty(width, dtype=np.int64)
    widest = 0
    for b in range(lo, hi):
        widest = max(widest, start[b + 1] - start[b])
    grouped = np.empty(widest, dtype=np.int32)
    for b in range(lo, hi):
        s = start[b]
        e = start[b + 1]
        if s == e:
            continue
        base = b << shift
        first[:] = 0
        for j in range(s, e):
            first[b_contact[j] - base + 1] += 1
        for k in range(width):
            first[k + 1] += first[k]
            head[k] = first[k]
        for j in range(s, e):
            k = b_contact[j] - base
            grouped[head[k]] = b_code[j]
            head[k] += 1
        for k in range(width):
            c = base + k
            n_new = 0
            for j in range(first[k], first[k + 1]):
                v = grouped[j]
                n_new += stamp[v] != c  # branch-free: the test is a coin flip
                stamp[v] = c
            if n_new:
                out[c] += n_new


_DC_SIG = types.void(ro(I32), ro(I32), I64, I64, I64, I64, rw(I64))


@njit([_DC_SIG], **NJIT)
def _distinct_codes(
    contact: np.ndarray,
    code: np.ndarray,
    n_codes: int,
    n_threads: int,
    shift: int,
    cbits: int,
    out: np.ndarray,
) -> None:
    # cbits > 0: pairs packed with the code in the low cbits bits, counted
    # with bitsets; 0: grouped and stamped
    m = len(contact)
    n_b = (len(out) >> shift) + 1
    cnt = np.zeros((1, n_b), dtype=np.int64)
    _dc_count(contact, 0, m, shift, cnt[0])
    start = np.empty(n_b + 1, dtype=np.int64)
    pos = np.empty((1, n_b), dtype=np.int64)
    _dc_offsets(cnt, start, pos)
    if cbits > 0:
        packed = np.empty(m, dtype=np.uint32)
        _dc_pack(contact, code, 0, m, shift, cbits, pos[0], packed)
        _dc_bits(start, packed, 0, n_b, shift, cbits, n_codes, out)
        return
    b_contact = np.empty(m, dtype=np.int32)
    b_code = np.empty(m, dtype=np.int32)
    _dc_place(contact, code, 0, m, shift, pos[0], b_contact, b_code)
    _dc_buckets(start, b_contact, b_code, 0, n_b, shift, n_codes, out)


@njit([_DC_SIG], **PARALLEL)
def _distinct_codes_par(
    contact: np.ndarray,
    code: np.ndarray,
    n_codes: int,
    n_threads: int,
    shift: int,
    cbits: int,
    out: np.ndarray,
) -> None:
    m = len(contact)
    n_b = (len(out) >> shift) + 1
    cnt = np.zeros((n_threads, n_b), dtype=np.int64)
    for t in prange(n_threads):
        _dc_count(contact, m * t // n_threads, m * (t + 1) // n_threads, shift, cnt[t])
    start = np.empty(n_b + 1, dtype=np.int64)
    pos = np.empty((n_threads, n_b), dtype=np.int64)
    _dc_offsets(cnt, start, pos)
    if cbits > 0:
        packed = np.empty(m, dtype=np.uint32)
        for t in prange(n_threads):
            lo = m * t // n_threads
            hi = m * (t + 1) // n_threads
            _dc_pack(contact, code, lo, hi, shift, cbits, pos[t], packed)
        for t in prange(n_threads):
            lo = n_b * t // n_threads
            hi = n_b * (t + 1) // n_threads
            _dc_bits(start, packed, lo, hi, shift, cbits, n_codes, out)
        return
    b_contact = np.empty(m, dtype=np.int32)
    b_code = np.empty(m, dtype=np.int32)
    for t in prange(n_threads):
        lo = m * t // n_threads
        hi = m * (t + 1) // n_threads
        _dc_place(contact, code, lo, hi, shift, pos[t], b_contact, b_code)
    for t in prange(n_threads):
        lo = n_b * t // n_threads
        hi = n_b * (t + 1) // n_threads
        _dc_buckets(start, b_contact, b_code, lo, hi, shift, n_codes, out)


@njit([types.UniTuple(I64, 4)(ro(I32), ro(I32))], **NJIT)
def _bounds(contact: np.ndarray, code: np.ndarray) -> tuple[int, int, int, int]:
    # (min, max) of the contacts and of the codes in one pass over both
    c_lo = c_hi = int(contact[0])
    v_lo = v_hi = int(code[0])
    for i in range(len(contact)):
        c = int(contact[i])
        v = int(code[i])
        c_lo = min(c_lo, c)
        c_hi = max(c_hi, c)
        v_lo = min(v_lo, v)
        v_hi = max(v_hi, v)
    return c_lo, c_hi, v_lo, v_hi


def dc_cbits(n_codes: int, shift: int) -> int:
    """Bits of a packed code when a bucket's bitset stays cache-sized (at
    most DC_BITS_MAX bytes) and a packed pair fits 32 bits; else 0 (grouped)."""
    cbits = max(1, (n_codes - 1).bit_length())
    words = (n_codes + 63) >> 6
    if (words << shift) * 8 > DC_BITS_MAX or cbits + shift > 32:
        return 0
    return cbits


def distinct_codes(contact: np.ndarray, code: np.ndarray, n_contacts: int) -> np.ndarray:
    """``distinct_counts`` for small non-negative integer values (dictionary
    codes): linear in the pairs plus the contacts and the codes, no sort."""
    contact = check_1d("contact", contact, (np.int32,))
    code = check_1d("code", code, (np.int32,), len(contact))
    out = np.zeros(n_contacts, dtype=np.int64)
    if not len(contact):
        return out
    c_lo, c_hi, v_lo, v_hi = _bounds(contact, code)
    if c_lo < 0 or c_hi >= n_contacts:
        raise ValueError("contact index outside the output array")
    if v_lo < 0:
        raise ValueError("codes must be non-negative")
    n_codes = int(v_hi) + 1
    threads = numba.get_num_threads() if len(contact) >= PARALLEL_MIN_PAIRS else 1
    kernel = _distinct_codes_par if threads > 1 else _distinct_codes
    kernel(contact, code, n_codes, threads, DC_SHIFT, dc_cbits(n_codes, DC_SHIFT), out)
    return out
