"""STORE/leads.sqlite: the connected lead forms and the lead inbox (mode 0600:
it holds people's answers).  Writes are synced (``synchronous=FULL``): a
webhook is answered only once its leads are on disk."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

LEADS_FILE = "leads.sqlite"

_SCHEMA = (
    """create table if not exists lead_forms (
        name text primary key, node text not null, integration text not null,
        page_id text not null, form_id text not null unique, mapping text not null,
        metadata text not null, source text not null, source_field text, match_field text,
        watermark_s integer not null, connected_ms integer not null)""",
    """create table if not exists lead_inbox (
        leadgen_id text primary key,
        form_id text, page_id text,
        notice text,                 -- the notification's value (JSON), or null
        lead text,                   -- the lead as fetched (JSON), once fetched
        via text not null,           -- webhook | backfill
        state text not null,         -- pending | done | unrouted | failed
        form text, node text, contact_id text,
        holder text, lease_until integer, next_ms integer not null default 0,
        attempts integer not null default 0, last_error text,
        received_ms integer not null, done_ms integer,
        unmapped text, missing text)""",
    "create index if not exists lead_inbox_state on lead_inbox (state, next_ms)",
    "create index if not exists lead_inbox_form on lead_inbox (form_id, received_ms)",
)


def leads_path(store_root: Path | str) -> Path:
    return Path(store_root) / LEADS_FILE


def ensure(store_root: Path | str) -> Path:
    path = leads_path(store_root)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db = sqlite3.connect(path, timeout=30)
    try:
        db.execute("pragma journal_mode = wal")  # kept by the file: set once
    finally:
        db.close()
    with connect(path) as db:
        for sql in _SCHEMA:
            db.execute(sql)
    return path


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """One transaction (committed on success, rolled back on error)."""
    db = sqlite3.connect(path, timeout=30)
    try:
        db.execute("pragma synchronous = full")
        with db:
            yield db
    finally:
        db.close()
