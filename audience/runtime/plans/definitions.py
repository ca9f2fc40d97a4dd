"""Saved deliveries and plans, and the plans' runs, in STORE/definitions.sqlite
(component "plans" of audience.runtime.db.migrate).

Deliveries and plans are saved per node under a name; every save bumps the
version and keeps the text in a ``*_versions`` history, so a run names the
plan and delivery versions it sent.  Only texts and states are stored here:
the edit rules live in service.py, the runs' logic in runner.py and
scheduler.py.

``plan_runs`` holds one row per (node, plan, occurrence), unique: the
scheduler that inserts it first decides whether it runs or was missed, and
the lease columns (``holder``, ``lease_until``) let one scheduler at a time
run it (``take_lease`` is a single UPDATE).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from audience.runtime.db import Migration, immediate, now_iso
from audience.runtime.store.definitions import open_definitions
from audience.runtime.triggers.definitions import DEFINITIONS_FILE, check_name

# plan states
DRAFT = "draft"
READY = "ready"
# run states
RUNNING = "running"  # due, being run (or waiting for a scheduler to resume it)
DONE = "done"
MISSED = "missed"  # later than the plan's lateness when a scheduler first saw it
MERGED = "merged"  # missed within the lateness, run as part of a later occurrence
FAILED = "failed"  # cannot run (e.g. its delivery was deleted); says why in ``note``
RUN_STATES = (RUNNING, DONE, MISSED, MERGED, FAILED)


def _m0001_plans(db: sqlite_utils.Database) -> None:
    db.execute(
        "create table delivery_defs (node text not null, name text not null, "
        "text text not null, version integer not null, created text not null, "
        "updated text not null, primary key (node, name))"
    )
    db.execute(
        "create table plans (node text not null, name text not null, text text not null, "
        "version integer not null, state text not null, "
        "ready_ms integer,            -- when it was last made ready\n"
        "scanned_ms integer,          -- occurrences up to here have their run rows\n"
        "created text not null, updated text not null, primary key (node, name))"
    )
    for kind in ("delivery_defs", "plans"):
        db.execute(
            f"create table {kind}_versions (node text not null, name text not null, "
            "version integer not null, body text not null, saved text not null, "
            "primary key (node, name, version))"
        )
    db.execute(
        """create table plan_runs (
            id integer primary key,
            node text not null,
            plan text not null,
            occurrence_ms integer not null,
            version integer not null,         -- the plan version it runs
            delivery_version integer,         -- the delivery version it sends (at its start)
            state text not null,
            holder text,                      -- the scheduler holding the lease
            lease_until integer,
            created_ms integer not null,
            started_ms integer,
            finished_ms integer,
            frozen integer not null default 0,  -- the audience file is written
            total integer,                    -- contacts with an email in the frozen audience
            batch_size integer,
            cursor integer not null default 0,  -- chunks recorded
            counts text not null default '{}',
            note text,
            unique (node, plan, occurrence_ms)
        )"""
    )
    db.execute("create index plan_runs_state on plan_runs (state)")


# (id, name, function) of component "plans"; append, never edit a released one.
MIGRATIONS: list[Migration] = [
    (1, "deliveries, plans and plan runs", _m0001_plans),
]


@dataclass(frozen=True)
class SavedDelivery:
    node: str
    name: str
    text: str
    version: int
    created: str
    updated: str


@dataclass(frozen=True)
class SavedPlan:
    node: str
    name: str
    text: str
    version: int
    state: str
    ready_ms: int | None
    scanned_ms: int | None
    created: str
    updated: str


@dataclass(frozen=True)
class PlanRun:
    id: int
    node: str
    plan: str
    occurrence_ms: int
    version: int
    delivery_version: int | None
    state: str
    holder: str | None
    lease_until: int | None
    created_ms: int
    started_ms: int | None
    finished_ms: int | None
    frozen: bool
    total: int | None
    batch_size: int | None
    cursor: int
    counts: dict[str, Any]
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "node": self.node,
            "plan": self.plan,
            "occurrence_ms": self.occurrence_ms,
            "version": self.version,
            "delivery_version": self.delivery_version,
            "state": self.state,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "total": self.total,
            "counts": self.counts,
            "note": self.note,
        }


_DELIVERY_COLS = "node, name, text, version, created, updated"
_PLAN_COLS = "node, name, text, version, state, ready_ms, scanned_ms, created, updated"
_RUN_COLS = (
    "id, node, plan, occurrence_ms, version, delivery_version, state, holder, lease_until, "
    "created_ms, started_ms, finished_ms, frozen, total, batch_size, cursor, counts, note"
)


def _run(row: tuple[Any, ...]) -> PlanRun:
    fields = list(row)
    fields[12] = bool(fields[12])
    fields[16] = json.loads(fields[16] or "{}")
    return PlanRun(*fields)


class PlanDefinitions:
    """``path`` None: in memory.  Thread-safe; every write is one ``BEGIN
    IMMEDIATE`` transaction, so a check and the write it allows are atomic
    across processes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db: sqlite_utils.Database | None = None

    @classmethod
    def for_store(cls, root: Path | None) -> PlanDefinitions:
        return cls(None if root is None else Path(root) / DEFINITIONS_FILE)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_definitions(self.path, "plans", MIGRATIONS)
            self._db.conn.isolation_level = None  # explicit transactions only
        return self._db.conn

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.conn.close()
                self._db = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the write lock from its first read."""
        with self._lock, immediate(self._conn()) as conn:
            yield conn

    def _read(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn().execute(sql, params).fetchall()

    # ------------------------------------------------------------ deliveries
    def save_delivery(self, conn: sqlite3.Connection, node: str, name: str, text: str) -> int:
        """Inside ``transaction()``: save a new version; returns it."""
        name = check_name(name, "delivery")
        old = conn.execute(
            "select created from delivery_defs where node = ? and name = ?", [node, name]
        ).fetchone()
        version = _next_version(conn, "delivery_defs", node, name)
        now = now_iso()
        conn.execute(
            f"insert or replace into delivery_defs ({_DELIVERY_COLS}) values (?, ?, ?, ?, ?, ?)",
            [node, name, text, version, old[0] if old else now, now],
        )
        _history(conn, "delivery_defs", node, name, version, text, now)
        return version

    def list_deliveries(self, node: str) -> list[SavedDelivery]:
        rows = self._read(
            f"select {_DELIVERY_COLS} from delivery_defs where node = ? order by name", [node]
        )
        return [SavedDelivery(*r) for r in rows]

    def get_delivery(self, node: str, name: str) -> SavedDelivery | None:
        rows = self._read(
            f"select {_DELIVERY_COLS} from delivery_defs where node = ? and name = ?",
            [node, name],
        )
        return SavedDelivery(*rows[0]) if rows else None

    def delivery_version(self, node: str, name: str, version: int) -> str | None:
        return self._version("delivery_defs", node, name, version)

    # ------------------------------------------------------------ plans
    def save_plan(
        self, conn: sqlite3.Connection, node: str, name: str, text: str, state: str
    ) -> int:
        """Inside ``transaction()``: save a new version in ``state``; returns it."""
        name = check_name(name, "plan")
        old = get_plan(conn, node, name)
        version = _next_version(conn, "plans", node, name)
        now = now_iso()
        conn.execute(
            f"insert or replace into plans ({_PLAN_COLS}) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                node,
                name,
                text,
                version,
                state,
                old.ready_ms if old else None,
                old.scanned_ms if old else None,
                old.created if old else now,
                now,
            ],
        )
        _history(conn, "plans", node, name, version, text, now)
        return version

    def list_plans(self, node: str | None = None) -> list[SavedPlan]:
        """``node`` None: the plans of every node."""
        where, params = ("where node = ?", [node]) if node is not None else ("", [])
        rows = self._read(f"select {_PLAN_COLS} from plans {where} order by node, name", params)
        return [SavedPlan(*r) for r in rows]

    def get_plan(self, node: str, name: str) -> SavedPlan | None:
        with self._lock:
            return get_plan(self._conn(), node, name)

    def plan_version(self, node: str, name: str, version: int) -> str | None:
        return self._version("plans", node, name, version)

    def _version(self, kind: str, node: str, name: str, version: int) -> str | None:
        rows = self._read(
            f"select body from {kind}_versions where node = ? and name = ? and version = ?",
            [node, name, version],
        )
        return str(rows[0][0]) if rows else None

    # ------------------------------------------------------------ runs
    def list_runs(
        self, node: str, plan: str | None = None, limit: int | None = None
    ) -> list[PlanRun]:
        sql = f"select {_RUN_COLS} from plan_runs where node = ?"
        params: list[Any] = [node]
        if plan is not None:
            sql += " and plan = ?"
            params.append(plan)
        sql += " order by occurrence_ms desc, id desc"
        if limit is not None:
            sql += " limit ?"
            params.append(limit)
        return [_run(r) for r in reversed(self._read(sql, params))]

    def get_run(self, run_id: int) -> PlanRun | None:
        rows = self._read(f"select {_RUN_COLS} from plan_runs where id = ?", [run_id])
        return _run(rows[0]) if rows else None

    def runs_in_state(self, state: str) -> list[PlanRun]:
        rows = self._read(
            f"select {_RUN_COLS} from plan_runs where state = ? order by occurrence_ms, id",
            [state],
        )
        return [_run(r) for r in rows]

    def take_lease(self, run_id: int, holder: str, now_ms: int, lease_ms: int) -> bool:
        """Take (or renew) the lease of a running run: one UPDATE, so of two
        schedulers asking at once exactly one gets it; a lease that ran out
        (its holder died) is taken over."""
        with self.transaction() as conn:
            cur = conn.execute(
                "update plan_runs set holder = ?, lease_until = ?, "
                "started_ms = coalesce(started_ms, ?) where id = ? and state = ? "
                "and (holder is null or holder = ? or lease_until <= ?)",
                [holder, now_ms + lease_ms, now_ms, run_id, RUNNING, holder, now_ms],
            )
            return cur.rowcount == 1

    def update_run(self, run_id: int, holder: str, **values: Any) -> bool:
        """Write ``values`` to the run while ``holder`` holds its lease; False:
        the lease was lost (another scheduler took it over) and nothing changed."""
        if "counts" in values:
            values["counts"] = json.dumps(values["counts"], sort_keys=True)
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.transaction() as conn:
            cur = conn.execute(
                f"update plan_runs set {sets} where id = ? and holder = ? and state = ?",
                [*values.values(), run_id, holder, RUNNING],
            )
            return cur.rowcount == 1


def get_plan(conn: sqlite3.Connection, node: str, name: str) -> SavedPlan | None:
    row = conn.execute(
        f"select {_PLAN_COLS} from plans where node = ? and name = ?", [node, name]
    ).fetchone()
    return SavedPlan(*row) if row else None


def _next_version(conn: sqlite3.Connection, kind: str, node: str, name: str) -> int:
    """One more than any version ever saved (deleted ones included): a
    delivery key naming a version is never reused."""
    row = conn.execute(
        f"select max(version) from {kind}_versions where node = ? and name = ?", [node, name]
    ).fetchone()
    return int(row[0] or 0) + 1


def _history(
    conn: sqlite3.Connection, kind: str, node: str, name: str, version: int, body: str, now: str
) -> None:
    conn.execute(
        f"insert or replace into {kind}_versions (node, name, version, body, saved) "
        "values (?, ?, ?, ?, ?)",
        [node, name, version, body, now],
    )
