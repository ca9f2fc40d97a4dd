"""The delivery log's SQLite file, STORE/deliveries.sqlite, and its migrations
(component "deliveries" of audience.runtime.db.migrate).

WAL mode lets readers (``audience deliveries``, dry runs) run beside the
writers; ``busy_timeout`` makes a writer wait for another's transaction
instead of failing.  Connections run in autocommit mode so every transaction
is an explicit ``BEGIN IMMEDIATE``: it takes the write lock before reading,
which is what makes check-and-reserve atomic across processes.
"""

from __future__ import annotations

import fcntl
import secrets
import sqlite3
from pathlib import Path

import sqlite_utils

from audience.runtime.db import Migration, migrate
from audience.runtime.tracking import tables as tracking_tables

FILE = "deliveries.sqlite"
BUSY_TIMEOUT_MS = 60_000


def _m0001_deliveries(db: sqlite_utils.Database) -> None:
    db.execute(
        """create table deliveries (
            id integer primary key,
            key text not null unique,
            node text not null,
            contact_id text not null,
            email text,
            email_norm text,
            channel text not null,
            kind text not null,
            payload text,               -- JSON; null when payload_ref names a shared one
            payload_ref integer,
            status text not null,
            policy text,
            cap text,
            requested_ms integer not null,
            due_ms integer not null,
            test integer not null default 0,
            source text not null default '',
            created_ms integer not null,
            attempts integer not null default 0,
            next_attempt_ms integer not null default 0,
            lease_until integer,
            phase text,                 -- how far the current attempt got (see worker.py)
            sent_ms integer,
            last_error text,
            message_id text,
            resends integer not null default 0,
            batch_id integer,           -- a member of a batch (see batch.py) ...
            member_idx integer          -- ... at this index of its members
        )"""
    )
    db.execute("create index deliveries_contact on deliveries (node, contact_id, due_ms)")
    db.execute(
        "create index deliveries_email on deliveries (email_norm, due_ms) "
        "where email_norm is not null"
    )
    db.execute("create index deliveries_status on deliveries (status, due_ms)")
    db.execute("create table payloads (id integer primary key, body text not null)")
    # a plan's whole audience, checked at once: its members (Arrow IPC) count for
    # the caps from here; the worker turns them into deliveries rows in chunks
    db.execute(
        """create table batches (
            id integer primary key,
            key_prefix text not null unique,
            node text not null,
            channel text not null,
            kind text not null,
            payload_ref integer,        -- one payload for all, or null: per member
            policy text,
            caps text not null,         -- JSON list of the cap texts member codes refer to
            source text not null,
            requested_ms integer not null,
            due_ms integer not null,
            status text not null,       -- of its admitted members: reserved or deferred
            test integer not null,
            created_ms integer not null,
            total integer not null,
            materialized integer not null default 0,
            counts text not null,       -- JSON, what reserve_batch returned
            members blob not null
        )"""
    )
    db.execute("create index batches_due on batches (due_ms)")
    # the failed members of a batch stop counting; they are few, so is this index
    db.execute(
        "create index deliveries_batch_failed on deliveries (batch_id) "
        "where status = 'failed' and batch_id is not null"
    )
    db.execute("create table delivery_meta (k text primary key, v text not null)")
    # names this log in Message-IDs, so two stores never mint the same one
    db.execute("insert into delivery_meta values ('uid', ?)", [secrets.token_hex(8)])


def _m0002_single_index(db: sqlite_utils.Database) -> None:
    # a batch's range scan reads the single (non-batch) deliveries only: its
    # members, even once made rows, count from the batch
    db.execute(
        "create index deliveries_single on deliveries (due_ms) where batch_id is null and test = 0"
    )


MIGRATIONS: list[Migration] = [
    (1, "deliveries", _m0001_deliveries),
    (2, "deliveries_single_index", _m0002_single_index),
]


def connect(path: Path | None) -> sqlite3.Connection:
    """Open (creating and migrating) the log; ``path`` None: in memory."""
    if path is None:
        conn = sqlite3.connect(":memory:", check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("pragma journal_mode = wal")
    db = sqlite_utils.Database(conn)
    if path is None:
        _migrate(db)
    else:
        # migrate() reads what is applied, then applies the rest: two processes
        # opening a new log at once must not both create the tables
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _migrate(db)
    conn.isolation_level = None
    return conn


def _migrate(db: sqlite_utils.Database) -> None:
    migrate(db, "deliveries", MIGRATIONS)
    # the tracking tables live beside the deliveries they refer to
    migrate(db, "tracking", tracking_tables.MIGRATIONS)
