"""Per-node trigger state: what fired (for ``once per contact``, ``at most once
per D`` and "once per (trigger, event)"), and the journal of ingests whose
events are not matched yet.

STORE/nodes/NODE/triggers/state.sqlite   firings, and the journal of small ingests
STORE/nodes/NODE/triggers/journal/VVVVVVVV-XXXX.arrow   the journal of big ingests
STORE/nodes/NODE/triggers/lock           serialises matching across processes

Crash safety: an ingest writes its journal (a row committed with
``synchronous = full``, or a file fsync'd with its directory) before its
manifest switch; matching runs after the switch, and its firings are committed
in the same transaction that deletes the journal row (a file journal is
deleted right after).  A journal left behind by a crash is matched by the next
ingest (or ``catch_up``); one of a version that never landed is removed by the
next ingest that takes its version number.  Replaying a journal is harmless:
firings already recorded are skipped and deliveries are keyed.  That is why
the commit of the firings need not wait for the disk (``synchronous =
normal``): a power cut can only lose it together with the journal's deletion,
which a replay redoes.

A small journal is a row rather than a file because a row costs one fsync
(the WAL's) where a file costs two (the file's and its directory's) plus an
unlink; a big one stays a file (SQLite holds at most 1 GB in a value).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import sqlite_utils

from audience.runtime.db import Migration, migrate

# journals up to this size are rows of state.sqlite, bigger ones files
ROW_JOURNAL_MAX = 8 << 20


def _m0001_firings(db: sqlite_utils.Database) -> None:
    db.execute(
        "create table firings (trigger text not null, event_key text not null, "
        "contact_id text not null, ts_ms integer not null, version integer not null, "
        "fired_ms integer not null, outcome text not null, primary key (trigger, event_key))"
    )
    db.execute("create index firings_contact on firings (trigger, contact_id, ts_ms)")


def _m0002_journal(db: sqlite_utils.Database) -> None:
    db.execute(
        # autoincrement: an id is never reused, so a Journal names one ingest only
        "create table journal (id integer primary key autoincrement, "
        "version integer not null, body blob not null)"
    )
    db.execute("create index journal_version on journal (version)")


MIGRATIONS: list[Migration] = [(1, "firings", _m0001_firings), (2, "journal", _m0002_journal)]


@dataclass(frozen=True)
class Journal:
    """One ingest's journal: a row of the ``journal`` table or a file."""

    version: int
    row: int | None = None
    path: Path | None = None


@dataclass(frozen=True)
class Firing:
    trigger: str
    event_key: str
    contact_id: str
    ts_ms: int
    version: int
    fired_ms: int
    outcome: str  # JSON list, one entry per action


_INSERT = (
    "insert or ignore into firings (trigger, event_key, contact_id, ts_ms, "
    "version, fired_ms, outcome) values (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass
class FiringState:
    """The recorded firings, plus the ones of the batch being decided (kept in
    memory, indexed, until ``commit``; a dry run never commits)."""

    conn: sqlite3.Connection
    lock: threading.RLock
    pending: list[Firing] = field(default_factory=list)
    _keys: set[tuple[str, str]] = field(default_factory=set)
    _times: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def fired(self, trigger: str, event_key: str) -> bool:
        if (trigger, event_key) in self._keys:
            return True
        with self.lock:
            row = self.conn.execute(
                "select 1 from firings where trigger = ? and event_key = ?", [trigger, event_key]
            ).fetchone()
        return row is not None

    def fired_for(self, trigger: str, contact_id: str, lo: int | None, hi: int | None) -> bool:
        """Did ``trigger`` fire for the contact on an event with lo < ts < hi (None: unbounded)?"""
        lo_ = -(2**63) if lo is None else lo
        hi_ = 2**63 - 1 if hi is None else hi
        if any(lo_ < t < hi_ for t in self._times.get((trigger, contact_id), ())):
            return True
        with self.lock:
            row = self.conn.execute(
                "select 1 from firings where trigger = ? and contact_id = ? and ts_ms > ? "
                "and ts_ms < ? limit 1",
                [trigger, contact_id, lo_, hi_],
            ).fetchone()
        return row is not None

    def add(self, firing: Firing) -> None:
        self.pending.append(firing)
        self._keys.add((firing.trigger, firing.event_key))
        self._times.setdefault((firing.trigger, firing.contact_id), []).append(firing.ts_ms)

    def commit(self, done: Journal | None = None) -> None:
        """Record the pending firings and, in the same transaction, delete the
        journal row they came from (``done``; a file journal is the caller's)."""
        row = done.row if done is not None else None
        if not self.pending and row is None:
            return
        rows = [
            (f.trigger, f.event_key, f.contact_id, f.ts_ms, f.version, f.fired_ms, f.outcome)
            for f in self.pending
        ]
        with self.lock:
            self.conn.execute("pragma synchronous = normal")  # see the module's docstring
            with self.conn:
                self.conn.executemany(_INSERT, rows)
                if row is not None:
                    self.conn.execute("delete from journal where id = ?", [row])
        self.pending = []
        self._keys.clear()
        self._times.clear()

    def between(self, triggers: list[str], lo: int, hi: int) -> list[Firing]:
        """The recorded firings of ``triggers`` on events with lo <= ts <= hi."""
        if not triggers:
            return []
        marks = ", ".join("?" * len(triggers))
        sql = (
            "select trigger, event_key, contact_id, ts_ms, version, fired_ms, outcome "
            f"from firings where trigger in ({marks}) and ts_ms >= ? and ts_ms <= ? "
            "order by ts_ms, trigger"
        )
        with self.lock:
            rows = self.conn.execute(sql, [*triggers, lo, hi]).fetchall()
        return [Firing(*r) for r in rows]

    def list(self, trigger: str | None = None, limit: int = 100) -> list[Firing]:
        sql = (
            "select trigger, event_key, contact_id, ts_ms, version, fired_ms, outcome from firings"
        )
        params: list[object] = []
        if trigger is not None:
            sql += " where trigger = ?"
            params.append(trigger)
        sql += " order by fired_ms desc, ts_ms desc limit ?"
        params.append(limit)
        with self.lock:
            return [Firing(*r) for r in self.conn.execute(sql, params).fetchall()]


class NodeState:
    """The firings database and the journal of one node (``dir`` None: in memory)."""

    def __init__(self, dir: Path | None) -> None:
        self.dir = dir
        self.lock = threading.RLock()
        if dir is None:
            conn = sqlite3.connect(":memory:", check_same_thread=False)
            migrate(sqlite_utils.Database(conn), "trigger_state", MIGRATIONS)
        else:
            (dir / "journal").mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(dir / "state.sqlite"), check_same_thread=False, timeout=60)
            conn.execute("pragma journal_mode = wal")
            # two processes opening the node at once must not both migrate
            with open(dir / "migrate.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                migrate(sqlite_utils.Database(conn), "trigger_state", MIGRATIONS)
        self.conn = conn

    def firings(self) -> FiringState:
        return FiringState(self.conn, self.lock)

    @contextlib.contextmanager
    def matching(self) -> Iterator[None]:
        """One matcher at a time per node, across threads and processes."""
        with self.lock:
            if self.dir is None:
                yield
                return
            with open(self.dir / "lock", "a+b") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # ---------------------------------------------------------------- journal
    def write_journal(self, version: int, table: pa.Table) -> Journal | None:
        """Before the manifest switch to ``version`` (under the store's ingest
        lock); durable when it returns."""
        if self.dir is None:
            return None
        sink = pa.BufferOutputStream()
        with ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(table.num_rows, 1))
        body = sink.getvalue()
        # an ingest that never landed had this number (or a later one): its journal goes
        for old in self._files():
            if old.version >= version and old.path is not None:
                with contextlib.suppress(OSError):
                    old.path.unlink()
        small = body.size <= ROW_JOURNAL_MAX
        with self.lock:
            self.conn.execute("pragma synchronous = full")
            with self.conn:
                self.conn.execute("delete from journal where version >= ?", [version])
                if small:
                    cur = self.conn.execute(
                        "insert into journal (version, body) values (?, ?)",
                        [version, memoryview(body)],
                    )
                    return Journal(version, row=int(cur.lastrowid or 0))
        return Journal(version, path=self._write_file(version, body))

    def _write_file(self, version: int, body: pa.Buffer) -> Path:
        assert self.dir is not None
        jdir = self.dir / "journal"
        path = jdir / f"{version:08d}-{uuid.uuid4().hex[:12]}.arrow"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(memoryview(body))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(jdir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

    def _files(self) -> list[Journal]:
        if self.dir is None:
            return []
        out = []
        for name in os.listdir(self.dir / "journal"):
            if name.endswith(".arrow") and name[:8].isdigit():
                out.append(Journal(int(name[:8]), path=self.dir / "journal" / name))
        return out

    def discard_after(self, landed_version: int) -> None:
        """Forget journals of versions that never landed (an ingest killed or
        failed between its journal and its commit).  Called under the store's
        ingest lock, before the next version lands: a later ingest that writes
        no journal (profiles, say) would otherwise make one look landed."""
        with self.lock:
            stale = self.conn.execute(
                "select 1 from journal where version > ? limit 1", [landed_version]
            ).fetchone()
            if stale is not None:
                with self.conn:
                    self.conn.execute("delete from journal where version > ?", [landed_version])
        for j in self._files():
            if j.version > landed_version and j.path is not None:
                with contextlib.suppress(OSError):
                    j.path.unlink()
        if self.dir is not None:
            # a journal file half written when its process was killed (before
            # its rename): no ingest is writing one now, under the ingest lock
            for tmp in (self.dir / "journal").glob("*.arrow.tmp"):
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def pending_journals(self, landed_version: int) -> list[Journal]:
        """Journals of ingests that landed (version <= the manifest's), oldest first."""
        with self.lock:
            rows = self.conn.execute(
                "select id, version from journal where version <= ?", [landed_version]
            ).fetchall()
        found = [Journal(v, row=r) for r, v in rows]
        found += [j for j in self._files() if j.version <= landed_version]
        return sorted(found, key=lambda j: j.version)

    def read_journal(self, journal: Journal) -> pa.Table | None:
        """The journal's events (None: matched and removed by another process meanwhile)."""
        if journal.row is not None:
            with self.lock:
                found = self.conn.execute(
                    "select body from journal where id = ?", [journal.row]
                ).fetchone()
            return None if found is None else _table(found[0])
        assert journal.path is not None
        try:
            # read into memory: the file is deleted once matched
            return _table(journal.path.read_bytes())
        except (OSError, pa.ArrowInvalid):
            return None

    def journal_done(self, journal: Journal, firings: FiringState | None = None) -> None:
        """Commit ``firings`` and forget the journal they came from."""
        (firings or self.firings()).commit(journal)
        if journal.path is not None:
            with contextlib.suppress(FileNotFoundError):
                journal.path.unlink()


def _table(body: bytes) -> pa.Table:
    return ipc.open_file(pa.BufferReader(body)).read_all()
