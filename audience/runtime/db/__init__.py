"""SQLite databases of a store, and their migrations.

Each component (saved segments, triggers, DND, deliveries, API sources, ...)
keeps its own ordered list of migrations and applies it with ``migrate``; the
shared ``schema_migrations`` table records ``(component, id)``, so components
evolve independently in the same database file without renumbering each other.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import sqlite_utils

Migration = tuple[int, str, Callable[[sqlite_utils.Database], None]]


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction on ``conn`` (in autocommit mode) that holds SQLite's
    write lock from its first read on: committed when the block ends, rolled
    back when it raises."""
    conn.execute("begin immediate")
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    conn.execute("commit")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def migrate(db: sqlite_utils.Database, component: str, migrations: Sequence[Migration]) -> None:
    """Apply the migrations of ``component`` not yet applied, in order, each in a
    transaction with its record (never edit or reorder a released migration: append)."""
    with db.conn:
        db.execute(
            "create table if not exists schema_migrations (component text not null default "
            "'segments', id integer not null, name text not null, applied text not null, "
            "primary key (component, id))"
        )
    done = {
        r[0]
        for r in db.execute(
            "select id from schema_migrations where component = ?", [component]
        ).fetchall()
    }
    for mid, name, fn in migrations:
        if mid in done:
            continue
        with db.conn:
            fn(db)
            db.execute(
                "insert into schema_migrations (component, id, name, applied) values (?, ?, ?, ?)",
                [component, mid, name, now_iso()],
            )


def open_database(
    path: Path | None, component: str, migrations: Sequence[Migration]
) -> sqlite_utils.Database:
    """A connection to the SQLite file ``path`` (None: in memory) shared by the
    threads of one process, with ``component``'s migrations applied.  Raises
    ``sqlite3.Error`` when the file cannot be opened or migrated."""
    if path is None:
        db = sqlite_utils.Database(memory=True)
        migrate(db, component, migrations)
        return db
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    db = sqlite_utils.Database(conn)
    # Two processes opening a new store at once would both see a migration
    # missing and both apply it ("table already exists"): one at a time.
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        migrate(db, component, migrations)
    finally:
        os.close(fd)  # releases the lock
    return db
