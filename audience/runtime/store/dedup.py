"""The duplicate index: which event ids the store already holds, exactly.

Every accepted event id is kept, in acceptance order, in the ``__ids__``
dictionary (one chunk file per ingest batch, so an ingest never holds all ids
in memory).  Looking an id up there with a hash join would rebuild a hash
table of every id per batch (quadratic at tens of millions), so the index is
a list of *runs*: sorted 64-bit hashes of the ids, each with the id's position
in ``__ids__``, stored as files and searched memory-mapped.  A batch is
hashed and sorted (which finds duplicates inside it); a Bloom filter over all
runs sends only its positives (about 1% of new ids) to binary searches; a
hash found is only a candidate, confirmed by comparing the full ids, so a
hash collision never drops an event.  Runs are merged when of one size tier
(as in an LSM tree, see compact.py), up to ``MAX_RUN`` ids; the manifest
lists them in ``id_index``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from audience import lazy_compute as pc
from audience.engine.kernels.config import NJIT, njit
from audience.runtime.store.compact import merge_groups
from audience.runtime.store.dictionaries import IDS
from audience.runtime.store.hashing import Run, hash_ids, merge_runs, sort_order
from audience.runtime.store.layout import Backend, Manifest

H, LOC = "h", "loc"
# Runs are merged by size tier (compact.merge_groups) while under MAX_RUN
# ids, so a merge needs bounded memory.
MAX_RUN = 4_000_000
# An ingest's new ids are kept in memory (16 bytes each) up to this many,
# then written as one run.
SPILL_IDS = 2_000_000
# Batches with fewer ids skip the Bloom filter (until a bigger one builds it).
FILTER_MIN = 1_000


@njit(**NJIT, inline="always")
def _mask(x: np.uint64) -> np.uint64:  # pragma: no cover
    # three bits of one 64-bit word, from the hash's low bits (its top bits
    # choose the word)
    one = np.uint64(1)
    six = np.uint64(63)
    a = one << (x & six)
    b = one << ((x >> np.uint64(6)) & six)
    return a | b | (one << ((x >> np.uint64(12)) & six))


@njit(**NJIT)
def _bits_set(words: np.ndarray, h: np.ndarray, shift: np.uint64) -> None:  # pragma: no cover
    for i in range(h.shape[0]):
        x = h[i]
        words[x >> shift] |= _mask(x)


@njit(**NJIT)
def _bits_test(
    words: np.ndarray, h: np.ndarray, shift: np.uint64, out: np.ndarray
) -> None:  # pragma: no cover
    for i in range(h.shape[0]):
        x = h[i]
        m = _mask(x)
        out[i] = (words[x >> shift] & m) == m


class Filter:
    """A Bloom filter of 16 bits per id whose three bits per id lie in one
    64-bit word (one memory access per lookup), so only its positives are
    searched in the runs.  A false positive costs a binary search in every
    run; with one bit per id, 6% of new ids were false positives and their
    searches were a third of a 50M-event ingest; with three, about 1%."""

    def __init__(self, runs: list[Run]) -> None:
        self.count = 0
        self.log2 = 0  # of the number of words
        self.words = np.zeros(0, dtype=np.uint64)
        self.runs = runs
        self._resize(sum(len(h) for h, _ in runs))

    def _resize(self, count: int) -> None:
        self.log2 = max(10, int(np.ceil(np.log2(max(count, 1) * 16 / 64))))
        self.words = np.zeros(1 << self.log2, dtype=np.uint64)
        for h, _ in self.runs:
            _bits_set(self.words, h, np.uint64(64 - self.log2))
        self.count = count

    def add(self, h: np.ndarray) -> None:
        if (self.count + len(h)) * 16 > (64 << self.log2):
            self._resize(self.count + len(h))  # the runs already hold ``h``
        else:
            _bits_set(self.words, h, np.uint64(64 - self.log2))
            self.count += len(h)

    def maybe(self, h: np.ndarray) -> np.ndarray:
        out = np.empty(len(h), dtype=np.bool_)
        _bits_test(self.words, h, np.uint64(64 - self.log2), out)
        return out


def merge_all(runs: list[Run]) -> Run:
    """Pairwise, so each entry is copied O(log len(runs)) times."""
    while len(runs) > 1:
        pairs = [merge_runs(runs[i], runs[i + 1]) for i in range(0, len(runs) - 1, 2)]
        runs = pairs + ([runs[-1]] if len(runs) % 2 else [])
    return runs[0]


def make_run(hashes: np.ndarray, locs: np.ndarray) -> Run:
    order = sort_order(hashes)
    return hashes[order], locs[order]


class IdIndex:
    """The ids of the store plus those accepted so far in this ingest.

    ``fetch(locs)`` returns the ids at positions of ``__ids__`` (for the rare
    candidates only); ``runs`` are the persisted runs, ``new`` this ingest's."""

    def __init__(
        self,
        runs: list[Run],
        fetch: Callable[[np.ndarray], pa.Array],
        keep: Callable[[Run], Run] = lambda run: run,
    ) -> None:
        self.old = runs
        self.new: list[Run] = []  # this ingest's runs: written ones, then ``pending``
        self.pending: list[Run] = []  # in memory until SPILL_IDS of them
        self.fetch = fetch
        self.keep = keep  # persists a new run, returns what to search (a memory map)
        self.filter = Filter([])  # built on the first lookup
        self._filtered = False

    def fresh(self, s: SortedIds, first_loc: int, *, checked: bool = False) -> np.ndarray:
        """Rows to keep: no id, or an id seen neither before nor earlier in the
        batch.  The kept ids get positions ``first_loc, first_loc + 1, ...``
        (in row order) and join the index.  ``s``: the batch's ids as
        ``sort_ids`` gives them (it needs no index: an ingest runs it a batch
        ahead).  ``checked``: the caller has looked the ids up already (a
        sharded node's ingest, over every shard): only the batch's own
        repeats are dropped, and the index is not searched."""
        keep = np.ones(s.n, dtype=bool)
        if s.rows is None:
            return keep
        order, hs = s.order, s.hs
        kept_sorted = ~s.dup if checked else ~self._held(s)
        keep_present = np.empty(len(hs), dtype=bool)
        keep_present[order] = kept_sorted
        keep[s.rows] = keep_present
        kept_idx = np.flatnonzero(keep_present)  # positions in ``present``, row order
        locs = np.empty(len(hs), dtype=np.int64)
        locs[kept_idx] = np.arange(first_loc, first_loc + len(kept_idx), dtype=np.int64)
        if kept_sorted.any():
            run = (hs[kept_sorted], locs[order][kept_sorted])
            self.new.append(run)
            self.pending.append(run)
            self.filter.runs = [*self.old, *self.new]
            if self._filtered:  # else built over all runs when first needed
                self.filter.add(run[0])
            if sum(len(r[0]) for r in self.pending) >= SPILL_IDS:
                self.spill()
        return keep

    def known(self, s: SortedIds) -> np.ndarray:
        """Per row: its id is held, or stands on an earlier row of the batch.
        Adds nothing: a lookup for a caller that decides more than this
        index does (a sharded node, over every shard's index)."""
        known = np.zeros(s.n, dtype=bool)
        if s.rows is None:
            return known
        held = np.empty(len(s.hs), dtype=bool)
        held[s.order] = self._held(s)
        known[s.rows] = held
        return known

    def _held(self, s: SortedIds) -> np.ndarray:
        """In sorted order: the id is in the index or on an earlier row."""
        present, order, hs, dup = s.present, s.order, s.hs, s.dup.copy()
        # Against the store and earlier batches of this ingest: only the
        # filter's positives are searched in the runs.
        if not self._filtered and len(hs) >= FILTER_MIN:
            self.filter = Filter([*self.old, *self.new])
            self._filtered = True
        if self._filtered:
            cand = np.flatnonzero(self.filter.maybe(hs) & ~dup)
        else:
            # A small batch (a single event): searching every run costs less
            # than building the filter over all the store's ids.
            cand = np.flatnonzero(~dup)
        for run_h, run_loc in [*self.old, *self.new] if len(cand) else []:
            if not len(run_h):
                continue
            lo = np.searchsorted(run_h, hs[cand], side="left")
            match = (lo < len(run_h)) & (run_h[np.minimum(lo, len(run_h) - 1)] == hs[cand])
            hit = cand[match]
            found = self._against(present, order, hs, hit, lo[match], run_h, run_loc)
            dup[hit] |= found
            cand = cand[~dup[cand]]
            if not len(cand):
                break
        return dup

    def spill(self) -> None:
        """Merge the runs held in memory into one and hand it to ``keep``;
        searches go to what ``keep`` returns (a memory map) from then on."""
        if not self.pending:
            return
        merged = merge_all(self.pending)
        self.new = self.new[: len(self.new) - len(self.pending)]
        self.pending = []
        self.new.append(self.keep(merged))
        self.filter.runs = [*self.old, *self.new]

    def _against(
        self,
        present: pa.Array,
        order: np.ndarray,
        hs: np.ndarray,
        hit: np.ndarray,
        lo: np.ndarray,
        run_h: np.ndarray,
        run_loc: np.ndarray,
    ) -> np.ndarray:
        """For sorted positions ``hit`` whose hash is in the run (first at
        ``lo``): is the id itself there?"""
        if not len(hit):
            return np.zeros(0, dtype=bool)
        hi = np.searchsorted(run_h, hs[hit], side="right")
        counts = hi - lo
        which = np.repeat(np.arange(len(hit)), counts)
        starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        entries = starts + np.arange(len(which))
        stored = self.fetch(run_loc[entries])
        mine = present.take(pa.array(order[hit[which]]))
        eq = _np(pc.equal(pc.cast(stored, pa.string()), mine))
        out = np.zeros(len(hit), dtype=bool)
        np.logical_or.at(out, which, eq)
        return out


@dataclass(frozen=True)
class SortedIds:
    """A batch's ids hashed and sorted, with the duplicates inside the batch
    found: everything ``IdIndex.fresh`` needs that does not depend on the index."""

    n: int  # rows of the batch
    rows: np.ndarray | None  # rows with an id (None: no row has one)
    present: pa.Array  # their ids
    order: np.ndarray  # the stable sort of their hashes
    hs: np.ndarray  # the hashes, sorted
    dup: np.ndarray  # in sorted order: an earlier row has the same id


def sort_ids(ids: pa.Array) -> SortedIds:
    n = len(ids)
    has = np.ones(n, dtype=bool) if ids.null_count == 0 else _np(ids.is_valid())
    rows = np.flatnonzero(has)
    if not len(rows):
        empty = np.zeros(0, dtype=np.int64)
        return SortedIds(n, None, ids, empty, empty.view(np.uint64), empty.view(bool))
    present = ids if len(rows) == n else ids.filter(pa.array(has))
    h = hash_ids(present)
    order = sort_order(h)
    hs = h[order]
    dup = np.zeros(len(hs), dtype=bool)
    # Within the batch: equal neighbours after a stable sort; the earlier row wins.
    same = np.flatnonzero(hs[1:] == hs[:-1]) + 1
    if len(same):
        dup[same] = _within(present, order, hs, same)
    return SortedIds(n, rows, present, order, hs, dup)


def _within(present: pa.Array, order: np.ndarray, hs: np.ndarray, same: np.ndarray) -> np.ndarray:
    """For each sorted position in ``same`` (hash equal to its predecessor):
    is its id equal to an earlier row's of the same hash?"""
    a = present.take(pa.array(order[same]))
    b = present.take(pa.array(order[same - 1]))
    eq = _np(pc.equal(a, b))
    if eq.all():
        return eq
    # A true hash collision inside the batch (astronomically rare): decide
    # those hash groups exactly, in Python.
    out = eq.copy()
    for k in np.flatnonzero(~eq):
        pos = int(same[k])
        start = pos
        while start > 0 and hs[start - 1] == hs[pos]:
            start -= 1
        mine = present[int(order[pos])].as_py()
        earlier = {present[int(order[j])].as_py() for j in range(start, pos)}
        out[k] = mine in earlier
    return out


def take_chunked(
    starts: np.ndarray, chunk: Callable[[int], pa.Array], locs: np.ndarray
) -> pa.Array:
    """The values at positions ``locs`` (in that order) of arrays laid end to
    end, chunk ``c`` (``chunk(c)``) starting at ``starts[c]``."""
    which = np.searchsorted(starts, locs, side="right") - 1
    idx_parts: list[np.ndarray] = []
    arr_parts: list[pa.Array] = []
    for c in np.unique(which):
        idx = np.flatnonzero(which == c)
        arr_parts.append(chunk(int(c)).take(pa.array(locs[idx] - starts[c])))
        idx_parts.append(idx)
    if not arr_parts:
        return pa.array([], pa.string())
    combined = pa.concat_arrays(arr_parts)
    return combined.take(pa.array(np.argsort(np.concatenate(idx_parts), kind="stable")))


def _np(arr: pa.Array) -> np.ndarray:
    out: np.ndarray = arr.to_numpy(zero_copy_only=False)
    return out


# ------------------------------------------------------------ persisted index
class IdFiles:
    """The ``__ids__`` chunks and index runs of one node, for one ingest.

    Each batch's run is written at once (as a file of the version being made:
    a crash leaves it to the sweep) and searched memory-mapped, so the ids of
    an ingest never sit in memory together.  At commit the runs are merged
    by size tier (compact.merge_groups), up to ``MAX_RUN`` ids a run."""

    def __init__(self, backend: Backend, manifest: Manifest, version: int) -> None:
        self.backend = backend
        self.version = version
        self.chunks: list[tuple[str, int]] = list(manifest.dictionaries.get(IDS, []))
        self.added: list[tuple[str, int]] = []  # chunks written by this ingest
        self._starts = np.zeros(0, dtype=np.int64)
        self._arrays: dict[str, pa.Array] = {}
        self.runs: list[tuple[str, int]] = list(manifest.id_index)
        self.base_runs = len(self.runs)
        self.obsolete: list[str] = []  # merged away: removed once the ingest landed
        runs = [self._read_run(name) for name, _ in self.runs]
        covered = sum(c for _, c in self.runs)
        if covered < self.size:
            # A store written before the index existed: index the ids not covered.
            locs = np.arange(covered, self.size, dtype=np.int64)
            runs.append(self._keep(make_run(hash_ids(self.fetch(locs)), locs)))
        self.index = IdIndex(runs, self.fetch, self._keep)

    @property
    def size(self) -> int:
        return sum(c for _, c in self.chunks)

    @property
    def changed(self) -> bool:
        return bool(self.added) or len(self.runs) != self.base_runs

    def _read_run(self, name: str) -> Run:
        t = self.backend.read_table(name)
        return _view(t.column(H)), _view(t.column(LOC))

    def _write_run(self, run: Run) -> str:
        h, loc = run
        return self.backend.write_table(
            "index", self.version, pa.table({H: pa.array(h), LOC: pa.array(loc)})
        )

    def _keep(self, run: Run) -> Run:
        name = self._write_run(run)
        self.runs.append((name, len(run[0])))
        return self._read_run(name)

    def _array(self, name: str) -> pa.Array:
        arr = self._arrays.get(name)
        if arr is None:
            col = self.backend.read_table(name).column("value")
            arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
            self._arrays[name] = arr
        return arr

    def fetch(self, locs: np.ndarray) -> pa.Array:
        """The ids at positions ``locs`` of ``__ids__`` (in that order)."""
        if len(self._starts) != len(self.chunks):
            counts = np.array([c for _, c in self.chunks], dtype=np.int64)
            self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return take_chunked(self._starts, lambda c: self._array(self.chunks[c][0]), locs)

    def accept(
        self, ids: pa.Array, sorted_ids: SortedIds | None = None, *, checked: bool = False
    ) -> np.ndarray:
        """Rows to keep (see ``IdIndex.fresh``; ``sorted_ids``: ``ids`` sorted
        already); the kept ids are written as a new chunk."""
        s = sort_ids(ids) if sorted_ids is None else sorted_ids
        keep = self.index.fresh(s, self.size, checked=checked)
        kept = ids.filter(pa.array(keep)) if not keep.all() else ids
        if kept.null_count:
            kept = kept.drop_null()
        if len(kept):
            name = self.backend.write_table("dictionaries", self.version, pa.table({"value": kept}))
            self.chunks.append((name, len(kept)))
            self.added.append((name, len(kept)))
        return keep

    def commit(self, m: Manifest) -> None:
        """Record this ingest's chunks and index runs in ``m`` (being written)."""
        self.index.spill()
        if not self.changed:
            return
        m.dictionaries.setdefault(IDS, []).extend(self.added)
        out = list(self.runs)
        # Neighbours of one size tier are merged, as partitions are (compact.py).
        for a, b in reversed(merge_groups([c for _, c in out], MAX_RUN)):
            group = out[a:b]
            merged = merge_all([self._read_run(name) for name, _ in group])
            out[a:b] = [(self._write_run(merged), sum(c for _, c in group))]
            del merged
            self.obsolete += [name for name, _ in group]
        m.id_index = out

    def cleanup(self) -> None:
        """After the manifest switch: drop the runs that were merged away."""
        self.backend.discard(self.obsolete)
        self.obsolete = []
        # The index's callbacks refer back to self: a cycle left to the
        # garbage collector made some later ingest pay tens of milliseconds.
        del self.index


def _view(col: pa.ChunkedArray) -> np.ndarray:
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    out: np.ndarray = arr.to_numpy(zero_copy_only=True)
    return out
