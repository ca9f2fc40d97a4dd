"""Sources: API clients with read or write access to one node, and their tokens.

A token is 32 random bytes shown once at creation; the store keeps only its
SHA-256 (a leaked definitions database does not leak usable tokens), and a
lookup compares digests with ``hmac.compare_digest``.  Tables live in
STORE/definitions.sqlite under the migration component "auth"; the same
component keeps ``api_writes``, one row per ingest made through a source
(which source wrote how many events or profiles, when).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from audience.runtime.db import Migration, now_iso, open_database
from audience.runtime.store.layout import DEFINITIONS_FILE

SCOPES = ("read", "write")
TOKEN_PREFIX = "aud_"
MAX_NAME = 200


class AuthError(Exception):
    """A source that cannot be created or changed; the message says why."""


def _m0001_sources(db: sqlite_utils.Database) -> None:
    db.execute(
        "create table api_sources (id text primary key, node text not null, name text not null, "
        "scope text not null, token_hash text not null unique, created text not null, "
        "revoked text)"
    )
    db.execute(
        "create table api_writes (id integer primary key autoincrement, source_id text not null, "
        "node text not null, kind text not null, at text not null, accepted integer not null, "
        "rejected integer not null, duplicates integer not null)"
    )
    db.execute("create index api_writes_source on api_writes (source_id)")


# (id, name, function) of component "auth"; see audience.runtime.db.migrate.
MIGRATIONS: list[Migration] = [
    (1, "api sources and writes", _m0001_sources),
]


@dataclass(frozen=True)
class Source:
    id: str
    node: str
    name: str
    scope: str  # "read" or "write"
    created: str
    revoked: str | None = None

    def can(self, scope: str) -> bool:
        return self.revoked is None and (self.scope == "write" or scope == "read")


@dataclass(frozen=True)
class Write:
    source_id: str
    node: str
    kind: str  # "events" or "profiles"
    at: str
    accepted: int
    rejected: int
    duplicates: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Sources:
    """The sources of the store at ``store_path`` (thread-safe)."""

    def __init__(self, store_path: str | Path) -> None:
        self.path = Path(store_path) / DEFINITIONS_FILE
        self._lock = threading.Lock()
        self._db: sqlite_utils.Database | None = None

    def _open(self) -> sqlite_utils.Database:
        if self._db is None:
            self._db = open_database(self.path, "auth", MIGRATIONS)
        return self._db

    def create(self, node: str, name: str, scope: str) -> tuple[Source, str]:
        """A new source and its token (the only time the token is available)."""
        if scope not in SCOPES:
            raise AuthError(f"bad scope {scope!r}: use 'read' or 'write'")
        clean = name.strip()
        if not clean or len(clean) > MAX_NAME or any(ord(c) < 32 for c in clean):
            raise AuthError(f"bad source name {name!r}: 1 to {MAX_NAME} printable characters")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        source = Source("src_" + secrets.token_hex(6), node, clean, scope, now_iso())
        with self._lock:
            db = self._open()
            with db.conn:
                db.execute(
                    "insert into api_sources (id, node, name, scope, token_hash, created) "
                    "values (?, ?, ?, ?, ?, ?)",
                    [source.id, node, clean, scope, hash_token(token), source.created],
                )
        return source, token

    def list_sources(self, node: str | None = None) -> list[Source]:
        sql = "select id, node, name, scope, created, revoked from api_sources"
        args: list[str] = []
        if node is not None:
            sql += " where node = ?"
            args.append(node)
        with self._lock:
            rows = self._open().execute(sql + " order by created, id", args).fetchall()
        return [Source(*r) for r in rows]

    def revoke(self, source_id: str) -> bool:
        """Revoke a source (its token stops working at once); False when unknown
        or already revoked."""
        with self._lock:
            db = self._open()
            with db.conn:
                cur = db.execute(
                    "update api_sources set revoked = ? where id = ? and revoked is null",
                    [now_iso(), source_id],
                )
        return cur.rowcount > 0

    def authenticate(self, token: str) -> Source | None:
        """The live source of ``token``, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = hash_token(token)
        with self._lock:
            row = (
                self._open()
                .execute(
                    "select id, node, name, scope, created, revoked, token_hash "
                    "from api_sources where token_hash = ?",
                    [digest],
                )
                .fetchone()
            )
        if row is None or not hmac.compare_digest(row[6], digest) or row[5] is not None:
            return None
        return Source(*row[:6])

    def record_write(
        self, source: Source, kind: str, accepted: int, rejected: int, duplicates: int
    ) -> None:
        with self._lock:
            db = self._open()
            with db.conn:
                db.execute(
                    "insert into api_writes (source_id, node, kind, at, accepted, rejected, "
                    "duplicates) values (?, ?, ?, ?, ?, ?, ?)",
                    [source.id, source.node, kind, now_iso(), accepted, rejected, duplicates],
                )

    def writes(self, source_id: str | None = None, limit: int = 100) -> list[Write]:
        """The most recent writes first."""
        sql = "select source_id, node, kind, at, accepted, rejected, duplicates from api_writes"
        args: list[str | int] = []
        if source_id is not None:
            sql += " where source_id = ?"
            args.append(source_id)
        args.append(limit)
        with self._lock:
            rows = self._open().execute(sql + " order by id desc limit ?", args).fetchall()
        return [Write(*r) for r in rows]
