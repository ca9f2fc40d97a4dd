"""Saved definitions (segments now; triggers, DND policies, templates and
deliveries later) in STORE/definitions.sqlite, shared by the nodes.

The saved segments evolve by the numbered ``MIGRATIONS`` of component
"segments" (audience.runtime.db.migrate); every store picks a new one up the
next time it is opened.  Other components keep their own lists.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audience.runtime.store.errors import StoreError

if TYPE_CHECKING:
    import sqlite_utils

    from audience.runtime.db import Migration

MAX_NAME = 200


def _m0001_segments(db: sqlite_utils.Database) -> None:
    db["segments"].create(  # type: ignore[union-attr]
        {"name": str, "text": str, "created": str, "updated": str, "version": int},
        pk="name",
    )


# (id, name, function) of the saved segments; see audience.runtime.db.migrate.
MIGRATIONS: list[Migration] = [
    (1, "segments", _m0001_segments),
]


@dataclass(frozen=True)
class SavedSegment:
    name: str
    text: str
    created: str  # ISO 8601 UTC
    updated: str
    version: int  # 1 when saved first, +1 at each save under the same name

    def to_dict(self) -> dict[str, object]:
        """The JSON form the CLI and the HTTP API print."""
        return {
            "name": self.name,
            "text": self.text,
            "created": self.created,
            "updated": self.updated,
            "version": self.version,
        }


def open_definitions(
    path: Path | None, component: str, migrations: Sequence[Migration]
) -> sqlite_utils.Database:
    """``component``'s connection to the store's definitions file (None: in
    memory), migrated; StoreError when it cannot be opened."""
    # imported here: a store opened to evaluate never reads its definitions,
    # and sqlite_utils is a tenth of a second of a new process's start
    from audience.runtime.db import open_database

    try:
        return open_database(path, component, migrations)
    except sqlite3.Error as exc:
        raise StoreError(f"{path or '<memory>'}: cannot open the definitions: {exc}") from None


class Definitions:
    """``path`` None: an in-memory database (for in-memory stores)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite_utils.Database | None = None

    def _open(self) -> sqlite_utils.Database:
        if self._db is None:
            self._db = open_definitions(self.path, "segments", MIGRATIONS)
        return self._db

    def save_segment(self, name: str, text: str) -> SavedSegment:
        name = _check_name(name)
        with self._lock:
            db = self._open()
            now = _now()
            with db.conn:
                row = _get(db, name)
                if row is None:
                    seg = SavedSegment(name, text, now, now, 1)
                else:
                    seg = SavedSegment(name, text, row.created, now, row.version + 1)
                db["segments"].upsert(  # type: ignore[union-attr]
                    {
                        "name": seg.name,
                        "text": seg.text,
                        "created": seg.created,
                        "updated": seg.updated,
                        "version": seg.version,
                    },
                    pk="name",
                )
            return seg

    def list_segments(self) -> list[SavedSegment]:
        sql = "select name, text, created, updated, version from segments order by name"
        with self._lock:
            # Every compile lists them: a process that only reads (an
            # evaluation) reads a migrated file as it is, without the
            # connection, lock and migration check of ``_open``.
            rows = _read_migrated(self.path, sql) if self._db is None else None
            if rows is None:
                rows = self._open().execute(sql).fetchall()
            return [SavedSegment(*r) for r in rows]

    def get_segment(self, name: str) -> SavedSegment | None:
        with self._lock:
            return _get(self._open(), name)

    def delete_segment(self, name: str) -> bool:
        with self._lock:
            db = self._open()
            with db.conn:
                cur = db.execute("delete from segments where name = ?", [name])
            return cur.rowcount > 0


def _read_migrated(path: Path | None, sql: str) -> list[tuple[Any, ...]] | None:
    """The rows of ``sql`` read from the definitions file without writing,
    when every migration of the saved segments is applied there; else None
    (no file, or one to migrate: ``Definitions._open`` does that)."""
    if path is None or not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            done = {
                r[0]
                for r in conn.execute(
                    "select id from schema_migrations where component = ?", ["segments"]
                )
            }
            if any(mid not in done for mid, _, _ in MIGRATIONS):
                return None
            rows: list[tuple[Any, ...]] = conn.execute(sql).fetchall()
            return rows
    except sqlite3.Error:  # not made yet, or busy: the regular way decides
        return None


def _get(db: sqlite_utils.Database, name: str) -> SavedSegment | None:
    row = db.execute(
        "select name, text, created, updated, version from segments where name = ?", [name]
    ).fetchone()
    return SavedSegment(*row) if row else None


def _check_name(name: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > MAX_NAME or any(ord(c) < 32 for c in clean):
        raise StoreError(f"bad segment name {name!r}: 1 to {MAX_NAME} printable characters")
    return clean


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SavedSegmentsMixin:
    """Saved segments, read and written in the store's definitions: the same
    for a node and for a sharded one (audience.runtime.node, whose
    ``delete_segment`` checks the segment's users)."""

    definitions: Definitions

    def save_segment(self, name: str, text: str) -> SavedSegment:
        return self.definitions.save_segment(name, text)

    def list_segments(self) -> list[SavedSegment]:
        return self.definitions.list_segments()

    def get_segment(self, name: str) -> SavedSegment | None:
        return self.definitions.get_segment(name)
