"""Saved triggers, DND policies and templates in STORE/definitions.sqlite
(component "triggers" of audience.runtime.db.migrate).

Every save of a name bumps its version and keeps the previous text in a
``*_versions`` history table; deliveries name the trigger version that made
them.  Triggers can be disabled and carry a validity span: a trigger reacts
only to events at or after its valid-from, which is the moment it was first
saved unless one is given (so importing history sends nothing); a new
version keeps the valid-from it had unless a new one is given.
Only texts are stored here: checking them is the caller's job (engine.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from audience.runtime.db import Migration, now_iso
from audience.runtime.store.definitions import open_definitions
from audience.runtime.store.errors import StoreError
from audience.timecalc import iso_utc

MAX_NAME = 200
DEFINITIONS_FILE = "definitions.sqlite"
# why a match outside a trigger's validity span did not fire (report keys)
BEFORE_VALID_FROM = "before valid-from"
AFTER_VALID_UNTIL = "after valid-until"


def _m0001_definitions(db: sqlite_utils.Database) -> None:
    db.execute(
        "create table triggers (name text primary key, text text not null, "
        "version integer not null, enabled integer not null default 1, "
        "valid_from_ms integer, valid_until_ms integer, created text not null, "
        "updated text not null)"
    )
    db.execute(
        "create table dnd_policies (name text primary key, text text not null, "
        "version integer not null, created text not null, updated text not null)"
    )
    db.execute(
        "create table templates (name text primary key, subject text not null, "
        "html text not null, text text not null, version integer not null, "
        "created text not null, updated text not null)"
    )
    for kind in ("triggers", "dnd_policies", "templates"):
        db.execute(
            f"create table {kind}_versions (name text not null, version integer not null, "
            "body text not null, saved text not null, primary key (name, version))"
        )


def iso_of_ms(ms: int) -> str:
    """``now_iso``'s form of an epoch-ms moment (out of datetime's range: the number)."""
    return iso_utc(ms)


def ms_of_iso(text: str) -> int:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _m0002_valid_from(db: sqlite_utils.Database) -> None:
    # Triggers saved before valid-from had a default fired for any event, history
    # included; from now on they react to what happens after they were created.
    rows = db.execute("select name, created from triggers where valid_from_ms is null").fetchall()
    for name, created in rows:
        db.execute(
            "update triggers set valid_from_ms = ? where name = ?", [ms_of_iso(created), name]
        )


# (id, name, function) of component "triggers"; append, never edit a released one.
MIGRATIONS: list[Migration] = [
    (1, "triggers, dnd policies, templates", _m0001_definitions),
    (2, "a trigger is valid from its creation unless told otherwise", _m0002_valid_from),
]


@dataclass(frozen=True)
class SavedTrigger:
    name: str
    text: str
    version: int
    enabled: bool
    valid_from_ms: int | None  # None only in a store written before valid-from had a default
    valid_until_ms: int | None  # exclusive
    created: str
    updated: str

    def active_at(self, ts_ms: int) -> bool:
        """Enabled, and ``ts_ms`` in its validity span."""
        return self.enabled and self.inactive_why(ts_ms) is None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the HTTP API's and the CLI's ``--format json``)."""
        vf, vu = self.valid_from_ms, self.valid_until_ms
        return {
            "name": self.name,
            "text": self.text,
            "version": self.version,
            "enabled": self.enabled,
            "valid_from": None if vf is None else iso_of_ms(vf),
            "valid_until": None if vu is None else iso_of_ms(vu),
            "created": self.created,
            "updated": self.updated,
        }

    def inactive_why(self, ts_ms: int) -> str | None:
        """Why an event at ``ts_ms`` is outside the validity span (None: inside)."""
        if self.valid_from_ms is not None and ts_ms < self.valid_from_ms:
            return BEFORE_VALID_FROM
        if self.valid_until_ms is not None and ts_ms >= self.valid_until_ms:
            return AFTER_VALID_UNTIL
        return None


@dataclass(frozen=True)
class SavedPolicy:
    name: str
    text: str
    version: int
    created: str
    updated: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SavedTemplate:
    name: str
    subject: str
    html: str
    text: str
    version: int
    created: str
    updated: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SavedVersion:
    name: str
    version: int
    body: str  # the text (a template's: JSON of subject, html, text)
    saved: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_TRIGGER_COLS = "name, text, version, enabled, valid_from_ms, valid_until_ms, created, updated"
_POLICY_COLS = "name, text, version, created, updated"
_TEMPLATE_COLS = "name, subject, html, text, version, created, updated"


def _trigger(row: tuple[Any, ...]) -> SavedTrigger:
    name, text, version, enabled, vf, vu, created, updated = row
    return SavedTrigger(name, text, version, bool(enabled), vf, vu, created, updated)


class TriggerDefinitions:
    """``path`` None: an in-memory database (for in-memory stores).  Thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db: sqlite_utils.Database | None = None
        self._writes = 0  # this connection's own changes (data_version ignores them)

    def _open(self) -> sqlite_utils.Database:
        if self._db is None:
            self._db = open_definitions(self.path, "triggers", MIGRATIONS)
        return self._db

    def generation(self) -> tuple[int, int]:
        """Changes whenever any definition changes (in any process): a cache key."""
        with self._lock:
            db = self._open()
            dv = int(db.execute("pragma data_version").fetchone()[0])
            return dv, self._writes

    # ---------------------------------------------------------------- triggers
    def save_trigger(
        self,
        name: str,
        text: str,
        *,
        enabled: bool = True,
        valid_from_ms: int | None = None,
        valid_until_ms: int | None = None,
        now_ms: int | None = None,
    ) -> SavedTrigger:
        saved = self.save_all([], [(name, text)], enabled, valid_from_ms, valid_until_ms, now_ms)
        return saved[1][0]

    def save_all(
        self,
        policies: list[tuple[str, str]],
        triggers: list[tuple[str, str]],
        enabled: bool = True,
        valid_from_ms: int | None = None,
        valid_until_ms: int | None = None,
        now_ms: int | None = None,
    ) -> tuple[list[SavedPolicy], list[SavedTrigger]]:
        """Save (name, text) policies and triggers in one transaction: all or none.

        ``now_ms`` is the moment of the save (default: the engine's clock): a new
        trigger's valid-from unless ``valid_from_ms`` is given; a trigger saved
        again keeps the valid-from it had unless one is given."""
        from audience.runtime.triggers.clock import now_ms as clock_ms

        moment = clock_ms() if now_ms is None else now_ms
        policies = [(check_name(n, "DND policy"), t) for n, t in policies]
        triggers = [(check_name(n, "trigger"), t) for n, t in triggers]
        with self._lock:
            db = self._open()
            now = iso_of_ms(moment)
            rows = []
            for name, text in triggers:
                old = self._get_trigger(db, name)
                vf = valid_from_ms
                if vf is None:
                    vf = moment if old is None or old.valid_from_ms is None else old.valid_from_ms
                _check_span(name, vf, valid_until_ms, given=valid_from_ms is not None)
                rows.append((name, text, old, vf))
            with db.conn:
                for name, text in policies:
                    self._save_policy(db, name, text, now)
                for name, text, old, vf in rows:
                    version = _next_version(db, "triggers", name)
                    created = now if old is None else old.created
                    row = (name, text, version, int(enabled), vf, valid_until_ms)
                    db.execute(
                        f"insert or replace into triggers ({_TRIGGER_COLS}) "
                        "values (?, ?, ?, ?, ?, ?, ?, ?)",
                        [*row, created, now],
                    )
                    self._history(db, "triggers", name, version, text, now)
            self._writes += 1
            saved_p = [self._get_policy(db, n) for n, _ in policies]
            saved_t = [self._get_trigger(db, n) for n, _ in triggers]
            return [p for p in saved_p if p], [t for t in saved_t if t]

    def set_enabled(self, name: str, enabled: bool) -> SavedTrigger | None:
        """Enable or disable (not a new version: the text is unchanged)."""
        with self._lock:
            db = self._open()
            with db.conn:
                db.execute(
                    "update triggers set enabled = ?, updated = ? where name = ?",
                    [int(enabled), now_iso(), name],
                )
            self._writes += 1
            return self._get_trigger(db, name)

    def any_trigger(self) -> bool:
        """Whether any trigger is saved (enabled or not: cheap, and exact
        enough to decide whether ingests need the trigger engine)."""
        with self._lock:
            return self._open().execute("select 1 from triggers limit 1").fetchone() is not None

    def list_triggers(self) -> list[SavedTrigger]:
        with self._lock:
            rows = self._open().execute(f"select {_TRIGGER_COLS} from triggers order by name")
            return [_trigger(r) for r in rows.fetchall()]

    def get_trigger(self, name: str) -> SavedTrigger | None:
        with self._lock:
            return self._get_trigger(self._open(), name)

    def _get_trigger(self, db: sqlite_utils.Database, name: str) -> SavedTrigger | None:
        row = db.execute(f"select {_TRIGGER_COLS} from triggers where name = ?", [name]).fetchone()
        return _trigger(row) if row else None

    def delete_trigger(self, name: str) -> bool:
        return self._delete("triggers", name)

    # ---------------------------------------------------------------- policies
    def save_policy(self, name: str, text: str) -> SavedPolicy:
        return self.save_all([(name, text)], [])[0][0]

    def _save_policy(self, db: sqlite_utils.Database, name: str, text: str, now: str) -> None:
        old = self._get_policy(db, name)
        version = _next_version(db, "dnd_policies", name)
        created = now if old is None else old.created
        db.execute(
            f"insert or replace into dnd_policies ({_POLICY_COLS}) values (?, ?, ?, ?, ?)",
            [name, text, version, created, now],
        )
        self._history(db, "dnd_policies", name, version, text, now)

    def list_policies(self) -> list[SavedPolicy]:
        with self._lock:
            rows = self._open().execute(f"select {_POLICY_COLS} from dnd_policies order by name")
            return [SavedPolicy(*r) for r in rows.fetchall()]

    def get_policy(self, name: str) -> SavedPolicy | None:
        with self._lock:
            return self._get_policy(self._open(), name)

    def _get_policy(self, db: sqlite_utils.Database, name: str) -> SavedPolicy | None:
        row = db.execute(
            f"select {_POLICY_COLS} from dnd_policies where name = ?", [name]
        ).fetchone()
        return SavedPolicy(*row) if row else None

    def delete_policy(self, name: str) -> bool:
        return self._delete("dnd_policies", name)

    # ---------------------------------------------------------------- templates
    def save_template(self, name: str, subject: str, html: str, text: str) -> SavedTemplate:
        import json

        name = check_name(name, "template")
        with self._lock:
            db = self._open()
            now = now_iso()
            with db.conn:
                old = self._get_template(db, name)
                version = _next_version(db, "templates", name)
                created = now if old is None else old.created
                db.execute(
                    f"insert or replace into templates ({_TEMPLATE_COLS}) "
                    "values (?, ?, ?, ?, ?, ?, ?)",
                    [name, subject, html, text, version, created, now],
                )
                body = json.dumps({"subject": subject, "html": html, "text": text})
                self._history(db, "templates", name, version, body, now)
            self._writes += 1
            return SavedTemplate(name, subject, html, text, version, created, now)

    def list_templates(self) -> list[SavedTemplate]:
        with self._lock:
            rows = self._open().execute(f"select {_TEMPLATE_COLS} from templates order by name")
            return [SavedTemplate(*r) for r in rows.fetchall()]

    def get_template(self, name: str) -> SavedTemplate | None:
        with self._lock:
            return self._get_template(self._open(), name)

    def _get_template(self, db: sqlite_utils.Database, name: str) -> SavedTemplate | None:
        row = db.execute(
            f"select {_TEMPLATE_COLS} from templates where name = ?", [name]
        ).fetchone()
        return SavedTemplate(*row) if row else None

    def delete_template(self, name: str) -> bool:
        return self._delete("templates", name)

    # ---------------------------------------------------------------- shared
    def history(self, kind: str, name: str) -> list[SavedVersion]:
        """Every saved version of ``name`` (``kind``: triggers, dnd_policies, templates)."""
        if kind not in ("triggers", "dnd_policies", "templates"):
            raise ValueError(f"no definitions of kind {kind!r}")
        with self._lock:
            rows = self._open().execute(
                f"select name, version, body, saved from {kind}_versions where name = ? "
                "order by version",
                [name],
            )
            return [SavedVersion(*r) for r in rows.fetchall()]

    def _history(
        self, db: sqlite_utils.Database, kind: str, name: str, version: int, body: str, now: str
    ) -> None:
        db.execute(
            f"insert or replace into {kind}_versions (name, version, body, saved) "
            "values (?, ?, ?, ?)",
            [name, version, body, now],
        )

    def _delete(self, table: str, name: str) -> bool:
        # the history stays: a name saved again continues its version numbers
        with self._lock:
            db = self._open()
            with db.conn:
                cur = db.execute(f"delete from {table} where name = ?", [name])
            self._writes += 1
            return cur.rowcount > 0


def _next_version(db: sqlite_utils.Database, kind: str, name: str) -> int:
    """One more than any version ever saved under ``name`` (deleted ones
    included), so a delivery key naming a version is never reused."""
    row = db.execute(f"select max(version) from {kind}_versions where name = ?", [name]).fetchone()
    return int(row[0] or 0) + 1


def _check_span(name: str, vf: int, vu: int | None, *, given: bool) -> None:
    if vu is not None and vu <= vf:
        why = "" if given else " (its valid-from is the moment it was first saved)"
        raise StoreError(
            f"trigger {name!r}: a trigger's validity must end after it starts: valid-until "
            f"{iso_of_ms(vu)} is not after valid-from {iso_of_ms(vf)}{why}"
        )


def check_name(name: str, what: str) -> str:
    clean = name.strip()
    if not clean or len(clean) > MAX_NAME or any(ord(c) < 32 for c in clean):
        raise StoreError(f"bad {what} name {name!r}: 1 to {MAX_NAME} printable characters")
    return clean
