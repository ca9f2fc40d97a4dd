"""Per-node trigger state: what fired (for ``once per contact``, ``at most once
per D`` and "once per (trigger, event)"), and the journal of ingests whose
events are not matched yet.

STORE/nodes/NODE/triggers/state.sqlite   firings
STORE/nodes/NODE/triggers/journal/VVVVVVVV-XXXX.arrow   accepted events of ingest V
STORE/nodes/NODE/triggers/lock           serialises matching across processes

Crash safety: an ingest writes its journal file (fsync) before its manifest
switch; matching runs after the switch and deletes the file once its
firings are committed.  A journal left behind by a crash is matched by the
next ingest (or ``catch_up``); one of a version that never landed is removed
by the next ingest that takes its version number.  Replaying a journal is
harmless: firings already recorded are skipped and deliveries are keyed.
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


def _m0001_firings(db: sqlite_utils.Database) -> None:
    db.execute(
        "create table firings (trigger text not null, event_key text not null, "
        "contact_id text not null, ts_ms integer not null, version integer not null, "
        "fired_ms integer not null, outcome text not null, primary key (trigger, event_key))"
    )
    db.execute("create index firings_contact on firings (trigger, contact_id, ts_ms)")


MIGRATIONS: list[Migration] = [(1, "firings", _m0001_firings)]


@dataclass(frozen=True)
class Firing:
    trigger: str
    event_key: str
    contact_id: str
    ts_ms: int
    version: int
    fired_ms: int
    outcome: str  # JSON list, one entry per action


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

    def commit(self) -> None:
        if not self.pending:
            return
        rows = [
            (f.trigger, f.event_key, f.contact_id, f.ts_ms, f.version, f.fired_ms, f.outcome)
            for f in self.pending
        ]
        with self.lock, self.conn:
            self.conn.executemany(
                "insert or ignore into firings (trigger, event_key, contact_id, ts_ms, "
                "version, fired_ms, outcome) values (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        self.pending = []
        self._keys.clear()
        self._times.clear()

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
        else:
            (dir / "journal").mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(dir / "state.sqlite"), check_same_thread=False, timeout=60)
            conn.execute("pragma journal_mode = wal")
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
    def write_journal(self, version: int, table: pa.Table) -> Path | None:
        """Before the manifest switch to ``version`` (under the store's ingest lock)."""
        if self.dir is None:
            return None
        jdir = self.dir / "journal"
        for old, _ in self._journals():
            if old >= version:  # an ingest that never landed had this number
                with contextlib.suppress(OSError):
                    (jdir / _).unlink()
        path = jdir / f"{version:08d}-{uuid.uuid4().hex[:12]}.arrow"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            with ipc.new_file(f, table.schema) as writer:
                writer.write_table(table, max_chunksize=max(table.num_rows, 1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(jdir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return path

    def _journals(self) -> list[tuple[int, str]]:
        if self.dir is None:
            return []
        out = []
        for p in (self.dir / "journal").iterdir():
            if p.name.endswith(".arrow") and p.name[:8].isdigit():
                out.append((int(p.name[:8]), p.name))
        return sorted(out)

    def pending_journals(self, landed_version: int) -> list[Path]:
        """Journals of ingests that landed (version <= the manifest's), oldest first."""
        assert self.dir is not None or not self._journals()
        jdir = self.dir / "journal" if self.dir is not None else Path()
        return [jdir / name for v, name in self._journals() if v <= landed_version]

    @staticmethod
    def read_journal(path: Path) -> pa.Table:
        # read into memory: the file is deleted once matched
        return ipc.open_file(pa.BufferReader(path.read_bytes())).read_all()

    @staticmethod
    def journal_done(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
