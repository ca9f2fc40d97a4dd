"""One ingest as a transaction: batches are validated, encoded and written
as they arrive, and ``commit`` switches the manifest once, so an ingest lands
whole or not at all.

Memory stays bounded by the batch size, not the input size: encoded events
wait per calendar month only until ``FLUSH_ROWS`` of them are pending, then
the month least recently added to is sorted and written as a partition (a
month with more than ``PART_ROWS`` events is cut into several).  Files
written before the manifest switch belong to a version that has not landed:
a crash leaves them to the next ingest's sweep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from audience.runtime.store.compact import compact
from audience.runtime.store.dedup import IdFiles, SortedIds, sort_ids
from audience.runtime.store.dictionaries import CONTACTS, IDS, TYPES, DictState, HashTables
from audience.runtime.store.encode import (
    CONTACT,
    ID,
    TS,
    encode_events,
    encode_strings,
    one_array,
    sort_partition,
)
from audience.runtime.store.errors import IngestReport, Reject
from audience.runtime.store.layout import Backend, Manifest, PartitionMeta
from audience.runtime.store.profiles import upsert
from audience.runtime.store.sources import Batch
from audience.runtime.store.validate import Checked, validate_events, validate_profiles
from audience.schema import CONTEXTS, Schema

INT64_MAX = np.iinfo(np.int64).max
# Encoded events kept in memory before the oldest month is written out, and
# the size at which a month's pending events become a partition (so one holds
# less than PART_ROWS plus a batch); about 110 bytes per encoded event.
FLUSH_ROWS = 1_000_000
PART_ROWS = 1_000_000
# Smaller partitions are written on the ingest's thread.
THREAD_ROWS = 10_000
# A batch with fewer rows than 1/SPARSE_RATIO of the contacts keeps first
# event times sparse (see Txn.first_sparse).
SPARSE_RATIO = 16
# Profile rows held (validated) before they are upserted together: bounds the
# memory of a big profiles file while its batches share one upsert.
PROFILE_UPSERT_ROWS = 5_000_000
# A profiles batch at least this big has its contacts encoded on a thread
# while the next batch is checked.
PROFILE_AHEAD_ROWS = 100_000


def first_per_contact(contacts: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct contacts, the earliest ts of each)."""
    order = np.lexsort((ts, contacts))
    c = contacts[order]
    head = np.ones(len(c), dtype=bool)
    head[1:] = c[1:] != c[:-1]
    return c[head], ts[order][head]


class Txn:
    def __init__(
        self,
        backend: Backend,
        manifest: Manifest,
        schema: Schema,
        props: Mapping[str, str],
        load_dict: Callable[[str], pa.Array],
        hash_tables: HashTables | None = None,
        version: int | None = None,
    ) -> None:
        self.backend = backend
        self.base = manifest
        # A checkpoint of the log (wal.py) lands as the log's last version.
        self.version = manifest.version + 1 if version is None else version
        self.schema = schema
        self.props = props
        # The event ids are not a dictionary anyone encodes with: dedup.py keeps them.
        self.dicts = DictState(
            {k: load_dict(k) for k in manifest.dictionaries if k != IDS}, hash_tables
        )
        # Fixed codes for the event types and contexts, in schema order.
        self.dicts.ensure(TYPES, list(schema.events))
        self.dicts.ensure("context", list(CONTEXTS))
        self.n_old = manifest.dict_size(CONTACTS)
        self._ids: IdFiles | None = None
        self.pending: dict[str, list[pa.Table]] = {}  # month -> encoded pieces
        self.pending_rows = 0
        self.last_added: dict[str, int] = {}  # month -> batch number it last grew in
        self.batches = 0
        self.written: list[PartitionMeta] = []
        self._writer: threading.Thread | None = None
        self._write_error: BaseException | None = None
        # First event ts per contact in this ingest: dense (indexed by contact)
        # once a batch is big, else sparse (sorted contacts, their first ts), so a
        # small ingest costs nothing per contact of the store.
        self.first: np.ndarray | None = None
        self.first_sparse: tuple[np.ndarray, np.ndarray] | None = None
        self.profiled: list[np.ndarray] = []
        # Read on the first profiles batch: an events ingest never needs it.
        self.profile_table: pa.Table | None = None
        self.profile_rows = 0
        self._profiles_loaded = False
        self.profile_changed = False
        # (its contacts' codes, or their encoding under way; the rows)
        self._profile_batches: list[tuple[np.ndarray | Future[np.ndarray], pa.Table]] = []
        self._contact_coder: ThreadPoolExecutor | None = None
        self._string_coder: ThreadPoolExecutor | None = None
        self._profile_batch_rows = 0
        self._merge_lists: Collection[str] = ()
        self.rejects: list[Reject] = []
        # the events' ids were looked up by the caller (a sharded node's ingest)
        self.ids_checked = False

    @property
    def ids(self) -> IdFiles:
        """The duplicate index, loaded on the first events batch."""
        if self._ids is None:
            self._ids = IdFiles(self.backend, self.base, self.version)
        return self._ids

    @property
    def new_events(self) -> list[tuple[pa.Array, pa.Table]]:
        """(event ids, encoded rows) of the events accepted so far: what the
        trigger engine matches once the ingest has landed (audience.runtime.triggers).
        Written partitions are memory-mapped back, so this costs no copy."""
        self._wait_write()
        tables = [self.backend.read_table(p.file) for p in self.written]
        tables += [piece for pieces in self.pending.values() for piece in pieces]
        return [(one_array(t.column(ID)), t.drop_columns([ID])) for t in tables]

    # ------------------------------------------------------------------ events
    def check(self, batch: Batch, source: str) -> CheckedBatch:
        """An events batch validated and its ids hashed and sorted: needs
        nothing from the batches before it.  ``check`` then ``dedup`` run
        each a batch ahead of the next in a thread of its own (store.py), so
        that the ingest's thread only assembles the encoded batch."""
        checked = validate_events(batch.table, self.schema, self.props, batch.pre)
        rejects = reject_list(batch, checked, source, "events")
        ids = one_array(checked.table.column("id"))
        return CheckedBatch(checked.table, rejects, ids, sort_ids(ids), batch.units)

    def dedup(self, batch: CheckedBatch) -> Prepared:
        """A checked batch without its duplicates.  The batches are deduplicated
        one at a time, in order, so the duplicate index sees them as a single
        thread would."""
        table, rejects = batch.table, batch.rejects
        keep = self.ids.accept(batch.ids, batch.sorted_ids, checked=self.ids_checked)
        table, dups = self._fresh(table, keep)
        contacts = strings = None
        if table.num_rows:
            # The contacts' codes, and those of the other string columns, are
            # given on two threads of their own, each in batch order (the
            # codes a plain loop gives; they share no dictionary), while
            # ``apply`` finishes the batch before: the dictionaries' lookups
            # were most of ``apply``, the contacts' half of it.
            if self._contact_coder is None:
                self._contact_coder = ThreadPoolExecutor(1, "ingest-contacts")
                self._string_coder = ThreadPoolExecutor(1, "ingest-strings")
            assert self._string_coder is not None
            ids = one_array(table.column("contact_id"))
            contacts = self._contact_coder.submit(self.dicts.encode_any, CONTACTS, ids)
            strings = self._string_coder.submit(encode_strings, table, self.props, self.dicts)
        return Prepared(table, rejects, dups, batch.units, contacts, strings)

    def apply(self, prepared: Prepared) -> IngestReport:
        report = self._report(prepared.rejects)
        report.duplicates += prepared.duplicates
        contacts = None if prepared.contacts is None else prepared.contacts.result()
        strings = None if prepared.strings is None else prepared.strings.result()
        self._add_fresh(prepared.table, report, contacts, strings)
        return report

    def close(self) -> None:
        """Wait for the encoding of batches prepared but never applied (an
        ingest that failed): it must not change the store's hash tables
        after the failure has dropped them."""
        for coder in (self._contact_coder, self._string_coder):
            if coder is not None:
                coder.shutdown(wait=True)
        self._contact_coder = self._string_coder = None

    def add_valid(self, table: pa.Table, report: IngestReport) -> None:
        """Validated events (also the rows of a log being checkpointed)."""
        table, dups = self._fresh(table, self.ids.accept(one_array(table.column("id"))))
        report.duplicates += dups
        self._add_fresh(table, report)

    @staticmethod
    def _fresh(table: pa.Table, keep: np.ndarray) -> tuple[pa.Table, int]:
        """The rows ``keep`` says are new, and how many were duplicates."""
        dups = int(len(keep) - keep.sum())
        return (table.filter(pa.array(keep)) if dups else table), dups

    def _add_fresh(
        self,
        table: pa.Table,
        report: IngestReport,
        contacts: np.ndarray | None = None,
        strings: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Events checked and found new: encoded (``contacts``, ``strings``:
        codes given already, see ``encode_events``), and kept per month."""
        report.accepted += table.num_rows
        if not table.num_rows:
            return
        enc = encode_events(table, self.schema, self.props, self.dicts, contacts, strings)
        del table
        ts = enc.column(TS).to_numpy()
        self._first_seen(enc.column(CONTACT).to_numpy(), ts)
        self.batches += 1
        for key, piece in month_pieces(enc, ts):
            self.pending.setdefault(key, []).append(piece)
            self.last_added[key] = self.batches
            self.pending_rows += piece.num_rows
            if sum(p.num_rows for p in self.pending[key]) >= PART_ROWS:
                self._flush(key)
        while self.pending_rows > FLUSH_ROWS:
            # The month least recently added to (in time-ordered input, one
            # that is complete), the bigger first on a tie.
            key = min(
                self.pending,
                key=lambda k: (self.last_added[k], -sum(p.num_rows for p in self.pending[k])),
            )
            self._flush(key)
        _release()

    def _first_seen(self, contacts: np.ndarray, ts: np.ndarray) -> None:
        n = self.dicts.size(CONTACTS)
        # Sparse while everything this ingest has seen stays sparse: each batch
        # re-sorts what was kept, so the kept pairs count too (counting only the
        # batch made an ingest of many small batches over millions of contacts
        # quadratic: 50M events in batches over 12.5M contacts sorted for minutes).
        kept = 0 if self.first_sparse is None else len(self.first_sparse[0])
        if self.first is None and (kept + len(contacts)) * SPARSE_RATIO < n:
            if self.first_sparse is not None:
                contacts = np.concatenate([self.first_sparse[0], contacts])
                ts = np.concatenate([self.first_sparse[1], ts])
            self.first_sparse = first_per_contact(contacts, ts)
            return
        if self.first is None or len(self.first) < n:
            grown = np.full(n, INT64_MAX, dtype=np.int64)
            if self.first is not None:
                grown[: len(self.first)] = self.first
            self.first = grown
        if self.first_sparse is not None:
            np.minimum.at(self.first, *self.first_sparse)
            self.first_sparse = None
        np.minimum.at(self.first, contacts, ts)

    def _flush(self, month: str) -> None:
        pieces = self.pending.pop(month)
        rows = sum(p.num_rows for p in pieces)
        self.pending_rows -= rows
        # Sorted, written and fsynced by a thread while the next batches are
        # encoded; one partition at a time, so at most one waits in memory.
        self._wait_write()
        if rows < THREAD_ROWS:  # not worth a thread
            self._write(pieces, month)
            self._wait_write()  # raises what the write raised
            return
        self._writer = threading.Thread(target=self._write, args=(pieces, month), daemon=True)
        self._writer.start()

    def _write(self, pieces: list[pa.Table], month: str) -> None:
        try:
            table = sort_partition(pieces)
            pieces.clear()
            ts = table.column(TS).chunk(0)
            meta = PartitionMeta("", table.num_rows, int(ts[0].as_py()), int(ts[-1].as_py()), month)
            meta.file = self.backend.write_table("partitions", self.version, table)
            self.written.append(meta)
        except BaseException as exc:  # raised on the ingest's thread by _wait_write
            self._write_error = exc

    def _wait_write(self) -> None:
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self._write_error is not None:
            exc, self._write_error = self._write_error, None
            raise exc

    # ---------------------------------------------------------------- profiles
    def add_profiles(
        self, batch: Batch, source: str, merge_lists: Collection[str] = ()
    ) -> IngestReport:
        checked = validate_profiles(batch.table, self.schema, batch.pre)
        report = self._report(reject_list(batch, checked, source, "profiles"))
        table = checked.table
        report.accepted = table.num_rows
        if not table.num_rows:
            return report
        ids = one_array(table.column("contact_id"))
        contacts: np.ndarray | Future[np.ndarray]
        if table.num_rows >= PROFILE_AHEAD_ROWS:
            # Encoded on one thread, in batch order (the codes a plain loop
            # gives), while this thread checks the next batch.
            if self._contact_coder is None:
                self._contact_coder = ThreadPoolExecutor(1, "profile-contacts")
            contacts = self._contact_coder.submit(self.dicts.encode, CONTACTS, ids)
        else:
            self._wait_contacts()
            contacts = self.dicts.encode(CONTACTS, ids)
        # The batches are upserted together (at the commit, or once many rows
        # wait): an upsert rebuilds every profile column of every contact, so
        # one per batch of a big file cost the square of its size.
        self._profile_batches.append((contacts, table))
        self._profile_batch_rows += table.num_rows
        self._merge_lists = merge_lists
        self.profile_changed = True
        if self._profile_batch_rows >= PROFILE_UPSERT_ROWS:
            self._upsert_profiles()
        return report

    def _wait_contacts(self) -> list[tuple[np.ndarray, pa.Table]]:
        """The waiting batches with their contacts' codes, every encoding done."""
        done = [(c.result() if isinstance(c, Future) else c, t) for c, t in self._profile_batches]
        self._profile_batches = list(done)  # (a list of the wider element type)
        return done

    def _upsert_profiles(self) -> None:
        batches = self._wait_contacts()
        if self._contact_coder is not None:
            self._contact_coder.shutdown()
            self._contact_coder = None
        if not batches:
            return
        self.profiled.extend(c for c, _ in batches)
        if not self._profiles_loaded and self.base.profiles:
            self.profile_table = self.backend.read_table(self.base.profiles)
            self.profile_rows = self.profile_table.num_rows
        self._profiles_loaded = True
        self._profile_batches, self._profile_batch_rows = [], 0
        contacts = np.concatenate([c for c, _ in batches])
        tables = [t for _, t in batches]
        table = (
            tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
        )
        n_new = self.dicts.size(CONTACTS)
        self.profile_table = upsert(
            self.profile_table,
            self.profile_rows,
            n_new,
            contacts,
            table,
            self.schema.profile,
            self.dicts,
            self._merge_lists,
        )
        self.profile_rows = n_new

    def _report(self, rejects: list[Reject]) -> IngestReport:
        report = IngestReport(rejected=len(rejects), rejects=rejects)
        self.rejects.extend(rejects)
        return report

    # ------------------------------------------------------------------ commit
    def changed(self) -> bool:
        return bool(
            self.pending
            or self.written
            or self.rejects
            or self.profile_changed
            or self.dicts.added()
            or (self._ids is not None and self._ids.changed)
        )

    def commit(self) -> Manifest:
        m = self.base.copy()
        v = self.version
        write = self.backend.write_table
        for month in sorted(self.pending):
            self._flush(month)
        self._wait_write()
        _release()
        m.partitions.extend(sorted(self.written, key=lambda p: (p.bucket, p.min_ts)))
        self._upsert_profiles()
        if self.profile_changed and self.profile_table is not None:
            m.profiles = write("profiles", v, self.profile_table)
        n = self.dicts.size(CONTACTS)
        touched = self.first is not None or self.first_sparse is not None
        if n != self.n_old or touched or self.profiled:
            contacts = self._contacts_table(n)
            if contacts is not None:
                m.contacts = write("contacts", v, contacts)
        for key, values in sorted(self.dicts.added().items()):
            name = write("dictionaries", v, pa.table({"value": values}))
            m.dictionaries.setdefault(key, []).append((name, len(values)))
        if self._ids is not None:
            self._ids.commit(m)
        if self.rejects:
            m.rejects.append((write("rejects", v, rejects_table(self.rejects)), len(self.rejects)))
        compact(m, self.backend.read_table, lambda kind, t: write(kind, v, t))
        m.version = v
        # The grace period of what this version stops naming starts now.
        self.backend.dropped(self.base.files() - m.files())
        self.backend.commit(m)
        if self._ids is not None:
            self._ids.cleanup()
        self.backend.collect(m)
        return m

    def _contacts_table(self, n: int) -> pa.Table | None:
        """The new contacts table, or None when it would equal the old one
        (events of known contacts, none earlier than their first: the common
        small ingest, which then writes no copy of a table of every contact)."""
        old_hp = old_first = None
        if self.base.contacts:
            old = self.backend.read_table(self.base.contacts)
            old_hp = old.column("has_profile").to_numpy()
            old_first = old.column("first_event_ts").to_numpy()
            if old.num_rows == n and not self._changes(old_hp, old_first):
                return None
        has_profile = np.zeros(n, dtype=np.uint8)
        first = np.full(n, INT64_MAX, dtype=np.int64)
        if old_hp is not None and old_first is not None:
            k = len(old_hp)
            has_profile[:k] = old_hp
            first[:k] = old_first
        for contacts in self.profiled:
            has_profile[contacts] = 1
        if self.first is not None:
            k = len(self.first)
            np.minimum(first[:k], self.first, out=first[:k])
        if self.first_sparse is not None:
            np.minimum.at(first, *self.first_sparse)
        return pa.table({"has_profile": pa.array(has_profile), "first_event_ts": pa.array(first)})

    def _changes(self, has_profile: np.ndarray, first: np.ndarray) -> bool:
        for contacts in self.profiled:
            if not has_profile[contacts].all():
                return True
        if self.first is not None:
            k = len(self.first)
            if (self.first < first[:k]).any():
                return True
        if self.first_sparse is not None:
            contacts, ts = self.first_sparse
            if (ts < first[contacts]).any():
                return True
        return False


@dataclass(frozen=True)
class CheckedBatch:
    """An events batch validated, its ids sorted (``Txn.check``)."""

    table: pa.Table  # the accepted rows, normalized
    rejects: list[Reject]
    ids: pa.Array  # the rows' event ids
    sorted_ids: SortedIds
    units: int  # progress made by the batch


@dataclass(frozen=True)
class Prepared:
    """An events batch checked and its duplicates dropped (``Txn.dedup``)."""

    table: pa.Table  # the accepted rows not already in the store, normalized
    rejects: list[Reject]
    duplicates: int  # accepted rows whose id the store (or an earlier row) had
    units: int  # progress made by the batch
    contacts: Future[np.ndarray] | None = None  # the codes of the rows' contacts
    strings: Future[dict[str, np.ndarray]] | None = None  # encode_strings's codes


def month_pieces(enc: pa.Table, ts: np.ndarray) -> list[tuple[str, pa.Table]]:
    """The encoded rows of each calendar month (UTC) the batch has, by month.
    Only the first and last ts are converted to months: a batch of one month
    (most, in time-ordered input) is its own piece; one spanning several is
    cut at the months' first milliseconds, by slices when it is in time order
    (no copy), else by filters."""
    lo, hi = ts.min(), ts.max()
    first, last = np.array([lo, hi]).astype("datetime64[ms]").astype("datetime64[M]")
    if first == last:
        return [(str(first), enc)]
    months = np.arange(first, last + 1)
    starts = months[1:].astype("datetime64[ms]").astype(np.int64)
    if len(ts) < 2 or bool((ts[1:] >= ts[:-1]).all()):
        cuts = [0, *np.searchsorted(ts, starts, side="left").tolist(), len(ts)]
        parts = [(m, enc.slice(cuts[k], cuts[k + 1] - cuts[k])) for k, m in enumerate(months)]
    else:
        which = np.searchsorted(starts, ts, side="right")
        parts = [(m, enc.filter(pa.array(which == k))) for k, m in enumerate(months)]
    return [(str(m), t) for m, t in parts if t.num_rows]


def reject_list(batch: Batch, checked: Checked, source: str, kind: str) -> list[Reject]:
    out = []
    for i in sorted(checked.problems):
        fld, reason = checked.problems[i]
        line = int(batch.lines[i])
        out.append(Reject(source, line, f"{batch.label} {line}", fld, reason, batch.raw(i), kind))
    return out


def _release() -> None:
    # Arrow's allocator keeps freed blocks for reuse; a streaming ingest would
    # otherwise hold on to the high-water mark of every batch and flush.
    pa.default_memory_pool().release_unused()


REJECT_COLUMNS = ("source", "line", "where", "field", "reason", "raw", "kind")


def rejects_table(rejects: list[Reject]) -> pa.Table:
    return pa.table(
        {
            "source": pa.array([r.source for r in rejects], pa.string()),
            "line": pa.array([r.line for r in rejects], pa.int64()),
            "where": pa.array([r.where for r in rejects], pa.string()),
            "field": pa.array([r.field for r in rejects], pa.string()),
            "reason": pa.array([r.reason for r in rejects], pa.string()),
            "raw": pa.array([r.raw for r in rejects], pa.string()),
            "kind": pa.array([r.kind for r in rejects], pa.string()),
        }
    )


def rejects_from_table(table: pa.Table) -> list[Reject]:
    return [Reject(**row) for row in table.to_pylist()]
