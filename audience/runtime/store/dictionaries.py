"""Store-wide, append-only string dictionaries during an ingest.

Each dictionary is an Arrow string array; a value's code is its position and
never changes.  An ingest looks codes up with a vectorised hash join
(``pc.index_in``) and appends the values it has not seen, in order of first
appearance, so the same data ingested the same way gets the same codes.
``index_in`` hashes the whole dictionary on every call, which costs more than
the batch itself once a dictionary is big (the contacts); those are looked up
in a hash table of their values' 64-bit hashes instead (hashing.py), kept up
to date as values are appended, and every match is confirmed on the strings.
The store keeps those tables from one ingest to the next (``tables``): a
dictionary only ever grows, so a table covering its first N values stays
right, and rebuilding it per ingest cost a single-event ingest 20 ms at 500k
contacts.  A failed ingest drops them (they may cover values that never landed).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from audience import lazy_compute as pc
from audience.engine.kernels.config import NJIT, njit
from audience.runtime.store.errors import StoreError
from audience.runtime.store.hashing import HashTable, hash_ids, integer_keys, string_parts
from audience.runtime.store.layout import CONTACTS as CONTACTS
from audience.runtime.store.layout import IDS as IDS
from audience.runtime.store.layout import TYPES as TYPES

_EMPTY = pa.array([], type=pa.string())
# Dictionaries at least this big are looked up by hash (see above).
HASHED_MIN = 4_096

# key -> (values covered, table), shared by the ingests of one store
HashTables = dict[str, tuple[int, HashTable]]
# A dictionary's table of integer keys is kept under its key and this.
INTEGERS = "#integers"


class DictState:
    def __init__(self, arrays: Mapping[str, pa.Array], tables: HashTables | None = None) -> None:
        self.arrays: dict[str, pa.Array] = dict(arrays)
        self.base_len: dict[str, int] = {k: len(v) for k, v in arrays.items()}
        self._tables: HashTables = tables if tables is not None else {}

    @property
    def tables(self) -> HashTables:
        """The hash tables (shared with forks)."""
        return self._tables

    def fork(self) -> DictState:
        """A copy to encode with (the arrays are immutable; the hash tables
        are shared, and may then cover values the fork added)."""
        out = DictState({}, self._tables)
        out.arrays, out.base_len = dict(self.arrays), dict(self.base_len)
        return out

    def get(self, key: str) -> pa.Array:
        return self.arrays.get(key, _EMPTY)

    def __len__(self) -> int:
        return len(self.arrays)

    def size(self, key: str) -> int:
        return len(self.arrays.get(key, _EMPTY))

    def encode(self, key: str, values: pa.Array) -> np.ndarray:
        """int32 codes of ``values`` (no nulls), appending unseen values."""
        n = len(values)
        if n == 0:
            return np.empty(0, dtype=np.int32)
        base = self.get(key)
        if len(base) >= HASHED_MIN:
            codes = self._encode_integers(key, base, values)
            if codes is not None:
                return codes
            return self._encode_hashed(key, base, values)
        return self._encode_exact(key, base, values)

    def _encode_exact(self, key: str, base: pa.Array, values: pa.Array) -> np.ndarray:
        # One hash pass over the batch (its distinct values, in order of first
        # appearance, and each row's index into them); then only the distinct
        # values are looked up in the dictionary, and the unseen ones appended
        # in that order: the codes the rows' order of first appearance gives.
        distinct, inverse = distinct_values(values)
        lut = np.empty(len(distinct), dtype=np.int32)
        if len(base):
            pos = pc.index_in(distinct, value_set=base)
            absent = pos.is_null().to_numpy(zero_copy_only=False)
            lut[~absent] = pc.drop_null(pos).to_numpy(zero_copy_only=False)
        else:
            absent = np.ones(len(distinct), dtype=bool)
        n_new = int(np.count_nonzero(absent))
        if n_new:
            new = distinct.filter(pa.array(absent)) if n_new < len(distinct) else distinct
            self.arrays[key] = pa.concat_arrays([base, new]) if len(base) else new
            self.base_len.setdefault(key, 0)
            lut[absent] = np.arange(len(base), len(base) + n_new, dtype=np.int32)
        out: np.ndarray = lut[inverse]
        return out

    def encode_any(self, key: str, values: pa.Array, valid: np.ndarray | None = None) -> np.ndarray:
        """``encode`` for a plain or a dictionary-encoded string array; with
        ``valid`` (the rows that have a value), the others get code 0."""
        if pa.types.is_dictionary(values.type):
            return self._encode_dictionary(key, values, valid)
        if valid is None:
            return self.encode(key, values)
        out = np.zeros(len(values), dtype=np.int32)
        out[valid] = self.encode(key, values.filter(pa.array(valid)))
        return out

    def _encode_dictionary(
        self, key: str, values: pa.DictionaryArray, valid: np.ndarray | None
    ) -> np.ndarray:
        """Only the distinct values the rows use are looked up, in the order
        the rows first use them: the codes a plain array gets."""
        indices = values.indices
        n, size = len(indices), len(values.dictionary)
        if n == 0:
            return np.empty(0, dtype=np.int32)
        idx = np.frombuffer(indices.buffers()[1], dtype=np.int32)[
            indices.offset : indices.offset + n
        ]
        rows = np.ones(0, dtype=np.bool_) if valid is None else valid
        order = np.empty(size, dtype=np.int32)
        k = _first_use(idx, rows, order)
        if k < 0:
            raise StoreError(f"{key}: a dictionary-encoded column has an index out of range")
        order = order[:k]
        lut = np.zeros(size, dtype=np.int32)
        in_order = len(order) == size and bool((order == np.arange(size)).all())
        # (a dictionary in order of first use, as Arrow's and ours are, is not copied)
        used_values = values.dictionary if in_order else values.dictionary.take(pa.array(order))
        lut[order] = self.encode(key, used_values)
        out = np.empty(n, dtype=np.int32)
        _map_codes(idx, rows, lut, out)
        return out

    def _table(self, key: str, base: pa.Array) -> HashTable:
        covered, table = self._tables.get(key, (0, HashTable()))
        if covered > len(base):  # cannot happen unless a failed ingest's table was kept
            covered, table = 0, HashTable()
        if covered < len(base):
            h = hash_ids(base.slice(covered))
            table.insert(h, np.arange(covered, len(base), dtype=np.int32))
            self._tables[key] = (len(base), table)
        return table

    def _encode_integers(self, key: str, base: pa.Array, values: pa.Array) -> np.ndarray | None:
        """``encode`` by exact integer keys when every value writes an int64
        (contact ids often do), or None.  The hashed lookup compares every
        row with its dictionary value, a random read of a big dictionary per
        row; an integer key needs no comparison where the table can vouch for
        it: codes of the dictionary this state was made with (a store's
        dictionaries only grow, and a failed ingest drops the tables) and
        codes new in this batch.  A code another state of this one's forks
        added is compared as the hashed lookup does."""
        if not pa.types.is_string(values.type):
            return None
        found = integer_keys(values)
        if found is None:
            return None
        ikey = key + INTEGERS
        covered, table = self._tables.get(ikey, (0, HashTable()))
        if covered > len(base):  # as in _table
            covered, table = 0, HashTable()
        if covered == 0 and len(values) * 16 < len(base):
            return None  # building the table would cost more than the lookup
        if covered < len(base):
            # The dictionary's values that write integers (others never match one).
            more = integer_keys(base.slice(covered), skip=True)
            assert more is not None
            rows = np.flatnonzero(more[1]).astype(np.int32) + np.int32(covered)
            table.insert(more[0][more[1]], rows)
        n_base, trusted = len(base), self.base_len.get(key, 0)
        codes, intro = table.encode(found[0], n_base)
        check = np.where((codes >= trusted) & (codes < n_base), codes, -1)
        if trusted < n_base and _differ(check, *string_parts(base), *string_parts(values)).any():
            self._tables.pop(ikey, None)
            return self._encode_exact(key, base, values)
        self._append(key, base, values, intro)
        self._tables[ikey] = (n_base + len(intro), table)
        return codes

    def _encode_hashed(self, key: str, base: pa.Array, values: pa.Array) -> np.ndarray:
        if not pa.types.is_string(values.type):
            values = pc.cast(values, pa.string())
        table, n_base = self._table(key, base), len(base)
        # One probe per row: a known hash gives its code, an unseen one the
        # next new code (the order of first appearance), added to the table.
        codes, intro = table.encode(hash_ids(values), n_base)
        # Every code confirmed on the bytes, in place (no copy of either
        # side): a stored one against the dictionary, a new one against the
        # row that brought it.
        b_off, b_data = string_parts(base)
        v_off, v_data = string_parts(values)
        stored = codes < n_base
        wrong = _differ(np.where(stored, codes, -1), b_off, b_data, v_off, v_data)
        if 0 < len(intro) < len(values):
            by = np.where(stored, -1, intro[np.maximum(codes - n_base, 0)])
            by[intro] = -1
            wrong |= _differ(by, v_off, v_data, v_off, v_data)
        if wrong.any():
            # A hash shared by two strings: the table may hold a new value
            # under another's hash; dropped (the next lookup rebuilds it),
            # and this batch encoded by exact hash joins.
            self._tables.pop(key, None)
            return self._encode_exact(key, base, values)
        if len(intro):
            self._append(key, base, values, intro)
            # it covers the new values at once: after the commit exactly the
            # stored dictionary (what the log copies)
            self._tables[key] = (n_base + len(intro), table)
        return codes

    def _append(self, key: str, base: pa.Array, values: pa.Array, intro: np.ndarray) -> None:
        """Append the values the rows ``intro`` brought."""
        if len(intro):
            new = values if len(intro) == len(values) else values.take(pa.array(intro))
            self.arrays[key] = pa.concat_arrays([base, new])
            self.base_len.setdefault(key, 0)

    def contains(self, key: str, values: pa.Array) -> np.ndarray:
        base = self.get(key)
        if not len(base) or not len(values):
            return np.zeros(len(values), dtype=bool)
        out: np.ndarray = pc.is_in(values, value_set=base).to_numpy(zero_copy_only=False)
        return out

    def append(self, key: str, values: pa.Array) -> None:
        """Append values known to be new (the duplicate index)."""
        if not len(values):
            return
        base = self.get(key)
        self.base_len.setdefault(key, 0)
        self.arrays[key] = pa.concat_arrays([base, values]) if len(base) else values

    def ensure(self, key: str, values: list[str]) -> None:
        """Make sure ``values`` have codes (event types and contexts get fixed
        codes in schema order before any data arrives)."""
        self.encode(key, pa.array(values, type=pa.string()))
        self.base_len.setdefault(key, 0)

    def added(self) -> dict[str, pa.Array]:
        """What this ingest appended, per dictionary."""
        out = {}
        for key, arr in self.arrays.items():
            start = self.base_len.get(key, 0)
            if len(arr) > start:
                out[key] = arr.slice(start)
        return out


@njit(**NJIT)
def _first_use(idx: np.ndarray, valid: np.ndarray, order: np.ndarray) -> int:  # pragma: no cover
    # The dictionary entries the rows use, in order of first use, into
    # ``order`` (one pass, no sort); their number, or -1 for an index out of
    # range.  An empty ``valid`` means every row has a value.
    size = order.shape[0]
    seen = np.zeros(size, dtype=np.bool_)
    all_valid = valid.shape[0] == 0
    k = 0
    for i in range(idx.shape[0]):
        if all_valid or valid[i]:
            j = idx[i]
            if j < 0 or j >= size:
                return -1
            if not seen[j]:
                seen[j] = True
                order[k] = j
                k += 1
    return k


@njit(**NJIT)
def _map_codes(
    idx: np.ndarray, valid: np.ndarray, lut: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover
    all_valid = valid.shape[0] == 0
    for i in range(idx.shape[0]):
        out[i] = lut[idx[i]] if all_valid or valid[i] else 0


def distinct_values(
    values: pa.Array, hashes: np.ndarray | None = None
) -> tuple[pa.Array, np.ndarray]:
    """(the distinct values in order of first appearance, each row's int32
    index into them), for an array without nulls.  A big string array is
    deduplicated by its 64-bit hashes in a table of our own (Arrow's
    ``dictionary_encode`` costs several times as much on a column of mostly
    distinct strings: emails, order ids); each row is confirmed equal to the
    first row of its hash, and a shared hash (two strings) falls back to Arrow.
    ``hashes``: the values' ``hash_ids``, when the caller has them."""
    n = len(values)
    if n >= HASHED_MIN and pa.types.is_string(values.type) and _mostly_distinct(values):
        rows = np.arange(n, dtype=np.int32)
        h = hash_ids(values) if hashes is None else hashes
        first = HashTable().insert(h, rows)  # the first row of each row's hash
        is_first = first == rows
        if is_first.all():
            # No hash twice, so no value twice (the usual emails, ids): the
            # values are their own dictionary, with nothing to compare or copy.
            return values, rows
        # The rows whose hash an earlier row had are compared with that row.
        later = np.where(is_first, -1, first)
        offsets, data = string_parts(values)
        if not _differ(later, offsets, data, offsets, data).any():
            rank = np.cumsum(is_first, dtype=np.int32) - 1
            inverse: np.ndarray = rank[first]
            return values.take(pa.array(np.flatnonzero(is_first))), inverse
    enc = pc.dictionary_encode(values)
    return enc.dictionary, _indices(enc.indices)


def _mostly_distinct(values: pa.Array) -> bool:
    """Whether a sample of the values is at least half distinct (a column of
    few values, which Arrow's hash encodes fastest, is not)."""
    sample = values.slice(0, HASHED_MIN)
    return len(pc.unique(sample)) * 2 >= len(sample)


@njit(**NJIT)
def _differ(
    found: np.ndarray, b_off: np.ndarray, b_data: np.ndarray, v_off: np.ndarray, v_data: np.ndarray
) -> np.ndarray:  # pragma: no cover
    # Rows whose candidate code (found[i] >= 0) names another string.
    out = np.zeros(found.shape[0], dtype=np.bool_)
    for i in range(found.shape[0]):
        c = found[i]
        if c < 0:
            continue
        bs, be = b_off[c], b_off[c + 1]
        vs, ve = v_off[i], v_off[i + 1]
        if be - bs != ve - vs:
            out[i] = True
            continue
        for k in range(be - bs):
            if b_data[bs + k] != v_data[vs + k]:
                out[i] = True
                break
    return out


def _indices(arr: pa.Array) -> np.ndarray:
    """The indices of a dictionary array (no nulls) as an int32 numpy array."""
    out: np.ndarray = arr.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return out


def _int32(arr: pa.Array) -> np.ndarray:
    out: np.ndarray = arr.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return out
