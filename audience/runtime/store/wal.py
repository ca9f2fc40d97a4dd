"""The write-ahead log of small event ingests.

A regular ingest writes a partition, a chunk of event ids, an index run and a
new manifest, each fsynced: a dozen milliseconds for a single event, most of
it waiting on the disk.  An events ingest of at most ``MAX_ROWS`` accepted
rows (and no rejects) is instead appended to ``wal/VVVVVVVV.log``, the log of
the manifest version VVVVVVVV it extends, with one fdatasync: record k of the
log *is* version VVVVVVVV + k.  Every reader replays the log's complete
records after reading the manifest (``Tail``), so a snapshot holds the
manifest's partitions plus the logged events, as a few more partitions.

A record is a header (magic, payload length, CRC-32 of the payload) and the
validated rows as an Arrow IPC stream.  A crash mid-append leaves a short or
damaged last record: readers stop before it, and the next writer (under the
ingest lock) cuts it off before appending.  Replaying encodes the records in
order with the manifest's dictionaries, so every process gives the logged
values the same codes a checkpoint gives them.

Once the log holds ``CHECKPOINT_ROWS`` rows, or when an ingest cannot go to
it (a big one, one with rejects, a profiles ingest), it is checkpointed: its
rows are written as a regular ingest whose version is the log's last one, and
the manifest switch makes the log history (deleted later with other
unreferenced files).
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from audience.runtime.store.compact import merge_groups
from audience.runtime.store.dictionaries import CONTACTS, INTEGERS, DictState, HashTables
from audience.runtime.store.encode import (
    CONTACT,
    TS,
    encode_events,
    one_array,
    partition_view,
    sort_partition,
)
from audience.runtime.store.errors import StoreError
from audience.runtime.store.hashing import HashTable
from audience.runtime.store.ingest import first_per_contact
from audience.runtime.store.layout import fsync_path
from audience.schema import Schema
from audience.snapshot import Partition

MAGIC = b"AWL1"
HEADER = struct.Struct("<4sII")  # magic, payload length, crc32 of the payload
# An events ingest of at most this many accepted rows goes to the log.
MAX_ROWS = 1_000
# The log is folded into partitions once it holds this many rows.
CHECKPOINT_ROWS = 10_000


def wal_name(version: int) -> str:
    return f"wal/{version:08d}.log"


def read_records(path: Path, offset: int) -> tuple[list[pa.Table], int]:
    """The complete records from byte ``offset`` on, and where they end."""
    try:
        if os.stat(path).st_size <= offset:  # the usual case: nothing new
            return [], offset
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the log: {exc.strerror}") from None
    out: list[pa.Table] = []
    pos = 0
    while pos + HEADER.size <= len(data):
        magic, size, crc = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + size
        if magic != MAGIC or end > len(data):
            break
        payload = data[pos + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            break
        out.append(ipc.open_stream(pa.py_buffer(payload)).read_all())
        pos = end
    return out, offset + pos


def append_record(path: Path, table: pa.Table, at: int) -> int:
    """Append ``table`` as one record at byte ``at`` (cutting off whatever
    follows: a record a crash left unfinished), durably; return the new end."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    payload = sink.getvalue().to_pybytes()
    record = HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload
    if not path.parent.is_dir():
        path.parent.mkdir(exist_ok=True)
        fsync_path(path.parent.parent)  # the node's new wal/ directory
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size != at:
            os.ftruncate(fd, at)
        try:
            os.pwrite(fd, record, at)
            os.fdatasync(fd)
        except BaseException:
            # Not durable, so not landed: a reader must not replay it.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, at)
            raise
    finally:
        os.close(fd)
    if at == 0:  # a new log (or one a crash left empty): its directory entry
        fsync_path(path.parent)
    return at + len(record)


def copy_tables(tables: HashTables, sizes: Mapping[str, int]) -> HashTables:
    """The store's dictionary hash tables that cover exactly the manifest's
    values, copied: the log's values are added to the copies only."""
    out: HashTables = {}
    for key, (covered, table) in tables.items():
        if covered == sizes.get(key.removesuffix(INTEGERS), -1):
            t = HashTable()
            t.keys, t.vals, t.count = table.keys.copy(), table.vals.copy(), table.count
            out[key] = (covered, t)
    return out


@dataclass
class Chunk:
    """Logged rows: as validated (for the checkpoint) and encoded, sorted by
    ts, as a partition (for snapshots)."""

    table: pa.Table
    encoded: pa.Table
    view: Partition


@dataclass(frozen=True)
class TailState:
    """What the log holds at one version: never changed once made, so a
    snapshot built from it is whole even while a writer applies the next
    record (``Tail.apply`` makes a new one)."""

    dicts: DictState  # the manifest's dictionaries plus the log's values
    records: int = 0
    rows: int = 0
    # Merged like partitions (compact.merge_groups), so a log of thousands of
    # records is a few chunks, each sorted once.
    chunks: tuple[Chunk, ...] = ()
    first: tuple[np.ndarray, np.ndarray] | None = None  # (contacts, first ts), sorted

    def partitions(self) -> tuple[Partition, ...]:
        return tuple(c.view for c in self.chunks)

    def table(self) -> pa.Table:
        """Every logged row, in log order."""
        return concat([c.table for c in self.chunks])

    def contacts(self) -> int:
        return self.dicts.size(CONTACTS)


@dataclass
class Tail:
    """The replayed log of one manifest version, as one process sees it.
    Changed only under the store's ``_wal_lock``."""

    base: int  # the manifest version the log extends
    path: Path
    schema: Schema
    props: Mapping[str, str]
    state: TailState  # starts with the manifest's dictionaries and nothing logged
    offset: int = 0  # end of the last record replayed
    ids: set[str] = field(default_factory=set)  # event ids logged (for the writer's dedup)
    tables_copied: bool = False  # has a writer given it the store's hash tables

    @property
    def dicts(self) -> DictState:
        """The dictionaries to encode the next record with (fork them first)."""
        return self.state.dicts

    @property
    def version(self) -> int:
        return self.base + self.state.records

    @property
    def records(self) -> int:
        return self.state.records

    @property
    def rows(self) -> int:
        return self.state.rows

    def replay(self) -> None:
        """Apply the records other writers appended since the last call, all
        at once (encoding them together gives the codes one by one would)."""
        tables, end = read_records(self.path, self.offset)
        if tables:
            table = tables[0] if len(tables) == 1 else concat(tables)
            work = self.dicts.fork()
            self.apply(table, self.encode(table, work), work, len(tables))
        self.offset = end

    def encode(self, table: pa.Table, dicts: DictState) -> pa.Table:
        return encode_events(table, self.schema, self.props, dicts)

    def apply(self, table: pa.Table, enc: pa.Table, dicts: DictState, records: int = 1) -> None:
        """The state after ``records`` more records: ``table`` as logged,
        ``enc`` encoded with ``dicts`` (a fork of ``self.dicts``)."""
        old = self.state
        self.ids.update(i for i in one_array(table.column("id")).to_pylist() if i is not None)
        contacts = enc.column(CONTACT).to_numpy()
        ts = enc.column(TS).to_numpy()
        if old.first is not None:
            contacts = np.concatenate([old.first[0], contacts])
            ts = np.concatenate([old.first[1], ts])
        chunks = [*old.chunks, self._chunk(table, [enc])]
        for a, b in reversed(merge_groups([c.table.num_rows for c in chunks], 1 << 62)):
            group = chunks[a:b]
            merged = concat([c.table for c in group])
            chunks[a:b] = [self._chunk(merged, [c.encoded for c in group])]
        self.state = TailState(
            dicts,
            old.records + records,
            old.rows + table.num_rows,
            tuple(chunks),
            first_per_contact(contacts, ts),
        )

    def _chunk(self, table: pa.Table, encoded: list[pa.Table]) -> Chunk:
        enc = sort_partition(encoded)
        return Chunk(table, enc, partition_view(enc, self.props))


def concat(tables: list[pa.Table]) -> pa.Table:
    # Records may lack a property column the others have: null, as absent is.
    return pa.concat_tables(tables, promote_options="permissive")
