"""Saved custom audience syncs and their jobs, in STORE/integrations.sqlite.

They live beside the integrations rather than in definitions.sqlite: a sync is
useless without its integration, both are read together by every run, and the
file is private (0600) already, which suits the invalid-entry samples a job keeps.
The tables are created here (``create table if not exists``), owned by this module.

A job moves ``queued`` -> ``running`` -> ``succeeded`` | ``partial`` | ``failed``.
A worker holds a running job's lease (``holder``, ``lease_until``, taken by one
UPDATE), renews it after every batch and a job whose holder died is taken over
once the lease expired; ``recovery`` then says ``resumed`` or ``restarted``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audience.integrations.meta.tokens import INTEGRATIONS_FILE
from audience.runtime.db import immediate

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
PARTIAL = "partial"  # some batches were acknowledged, then a refusal stopped the job
FAILED = "failed"
JOB_STATES = (QUEUED, RUNNING, SUCCEEDED, PARTIAL, FAILED)
OPEN_STATES = (QUEUED, RUNNING)

DIFF = "diff"
REPLACE = "replace"

SOURCES = ("USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED")

_SCHEMA = (
    "create table if not exists meta_syncs (id integer primary key, name text not null unique, "
    "node text not null, segment text not null, consent_field text, email_field text, "
    "phone_field text, country_code text not null, integration text not null, "
    "audience_id text, audience_name text, customer_file_source text, every_ms integer, "
    "next_due_ms integer, state_exact integer not null default 1, created_ms integer not null, "
    "updated_ms integer not null)",
    "create table if not exists meta_sync_jobs (id integer primary key, sync_id integer not null, "
    "sync text not null, mode text not null, origin text not null, state text not null, "
    "recovery text, holder text, lease_until integer, created_ms integer not null, "
    "started_ms integer, finished_ms integer, frozen integer not null default 0, "
    "cursor integer not null default 0, batches_total integer, sessions text not null "
    "default '{}', counts text not null default '{}', error text)",
    "create index if not exists meta_sync_jobs_state on meta_sync_jobs (state, id)",
)
_SYNC_COLUMNS = (
    "id, name, node, segment, consent_field, email_field, phone_field, country_code, "
    "integration, audience_id, audience_name, customer_file_source, every_ms, next_due_ms, "
    "state_exact, created_ms, updated_ms"
)
_JOB_COLUMNS = (
    "id, sync_id, sync, mode, origin, state, recovery, holder, lease_until, created_ms, "
    "started_ms, finished_ms, frozen, cursor, batches_total, sessions, counts, error"
)


class SyncError(ValueError):
    """Bad input: nothing was written.  ``code`` is stable (API and CLI)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Sync:
    id: int
    name: str
    node: str
    segment: str  # a saved segment's name, or a condition's text
    consent_field: str | None
    email_field: str | None
    phone_field: str | None
    country_code: str  # for phones written without one
    integration: str
    audience_id: str | None  # None until the new audience is created (first run)
    audience_name: str | None  # the new audience's name
    customer_file_source: str | None
    every_ms: int | None  # repeat period; None = runs only when asked
    next_due_ms: int | None
    state_exact: bool  # the uploaded-rows file is exactly the audience's rows
    created_ms: int
    updated_ms: int

    @property
    def keys(self) -> tuple[str, ...]:
        """The match keys, in the upload schema's order."""
        return tuple(k for k, f in (("EMAIL", self.email_field), ("PHONE", self.phone_field)) if f)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "node": self.node,
            "segment": self.segment,
            "consent_field": self.consent_field,
            "email_field": self.email_field,
            "phone_field": self.phone_field,
            "country_code": self.country_code,
            "integration": self.integration,
            "audience_id": self.audience_id,
            "audience_name": self.audience_name,
            "customer_file_source": self.customer_file_source,
            "every_ms": self.every_ms,
            "next_due_ms": self.next_due_ms,
        }


@dataclass(frozen=True)
class Job:
    id: int
    sync_id: int
    sync: str
    mode: str  # diff | replace
    origin: str  # manual | schedule
    state: str
    recovery: str | None  # resumed | restarted, after a worker died
    holder: str | None
    lease_until: int | None
    created_ms: int
    started_ms: int | None
    finished_ms: int | None
    frozen: bool  # the job's rows file is written
    cursor: int  # batches acknowledged
    batches_total: int | None
    sessions: dict[str, Any] = field(default_factory=dict)  # phase -> {session_id, started_ms}
    counts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def progress(self) -> float:
        if self.state == SUCCEEDED:
            return 1.0
        if not self.batches_total:
            return 0.0
        return min(1.0, self.cursor / self.batches_total)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sync": self.sync,
            "mode": self.mode,
            "origin": self.origin,
            "state": self.state,
            "recovery": self.recovery,
            "created_ms": self.created_ms,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "batches_done": self.cursor,
            "batches_total": self.batches_total,
            "progress": round(self.progress, 4),
            "sessions": self.sessions,
            "counts": self.counts,
            "error": self.error,
        }


def describe(j: Job) -> str:
    """One line: the job's state, progress and counts."""
    c = j.counts
    invalid = sum((c.get("invalid") or {}).values())
    parts = [
        f"job {j.id} ({j.mode}) {j.state}",
        f"{j.cursor}/{j.batches_total if j.batches_total is not None else '?'} batches",
        f"sent {c.get('sent', 0)}",
        f"adds {c.get('to_add', 0)}, removes {c.get('to_remove', 0)}",
        f"invalid {invalid} here, {c.get('platform_invalid', 0)} at the platform",
    ]
    if j.recovery:
        parts.append(j.recovery)
    line = ", ".join(parts)
    return line + (f": {j.error}" if j.error else "")


class SyncDefinitions:
    """The syncs and jobs of the store at ``root`` (short connections: many processes)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.path = self.root / INTEGRATIONS_FILE
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with self.db() as db:
            for stmt in _SCHEMA:
                db.execute(stmt)

    @property
    def files(self) -> Path:
        """Where the uploaded-rows state and the jobs' rows live."""
        return self.root / "meta_syncs"

    @contextlib.contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            with immediate(conn):
                yield conn
        finally:
            conn.close()

    # ---- syncs ------------------------------------------------------------------
    def all(self) -> list[Sync]:
        with self.db() as db:
            rows = db.execute(f"select {_SYNC_COLUMNS} from meta_syncs order by name").fetchall()
        return [_sync(r) for r in rows]

    def find(self, name: str) -> Sync | None:
        with self.db() as db:
            row = db.execute(
                f"select {_SYNC_COLUMNS} from meta_syncs where name = ?", (name,)
            ).fetchone()
        return None if row is None else _sync(row)

    def get(self, name: str) -> Sync:
        found = self.find(name)
        if found is None:
            raise SyncError("no_sync", f"no sync named {name!r}")
        return found

    def insert(self, values: dict[str, Any]) -> Sync:
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self.db() as db:
            if db.execute("select 1 from meta_syncs where name = ?", (values["name"],)).fetchone():
                raise SyncError("sync_exists", f"sync {values['name']!r} already exists")
            db.execute(f"insert into meta_syncs ({cols}) values ({marks})", list(values.values()))
        return self.get(values["name"])

    def update(self, sync_id: int, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.db() as db:
            db.execute(f"update meta_syncs set {sets} where id = ?", [*values.values(), sync_id])

    def delete(self, name: str) -> Sync:
        sync = self.get(name)
        with self.db() as db:
            busy = db.execute(
                "select 1 from meta_sync_jobs where sync_id = ? and state in (?, ?)",
                (sync.id, *OPEN_STATES),
            ).fetchone()
            if busy:
                raise SyncError("sync_busy", f"sync {name!r} has a job queued or running")
            db.execute("delete from meta_sync_jobs where sync_id = ?", (sync.id,))
            db.execute("delete from meta_syncs where id = ?", (sync.id,))
        (self.files / f"{sync.id}.arrow").unlink(missing_ok=True)
        return sync

    # ---- jobs -------------------------------------------------------------------
    def queue(self, sync: Sync, mode: str, origin: str, now_ms: int) -> tuple[Job, bool]:
        """A new queued job; or the sync's open one (False) when it has one already."""
        with self.db() as db:
            row = db.execute(
                f"select {_JOB_COLUMNS} from meta_sync_jobs where sync_id = ? and state in (?, ?) "
                "order by id limit 1",
                (sync.id, *OPEN_STATES),
            ).fetchone()
            if row is not None:
                return _job(row), False
            cur = db.execute(
                "insert into meta_sync_jobs (sync_id, sync, mode, origin, state, created_ms) "
                "values (?, ?, ?, ?, ?, ?)",
                (sync.id, sync.name, mode, origin, QUEUED, now_ms),
            )
            job_id = cur.lastrowid
        return self.job(int(job_id or 0)), True

    def job(self, job_id: int) -> Job:
        with self.db() as db:
            row = db.execute(
                f"select {_JOB_COLUMNS} from meta_sync_jobs where id = ?", (job_id,)
            ).fetchone()
        if row is None:
            raise SyncError("no_job", f"no sync job {job_id}")
        return _job(row)

    def jobs(self, sync: str | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""
        where, args = ("where sync = ?", [sync]) if sync is not None else ("", [])
        with self.db() as db:
            rows = db.execute(
                f"select {_JOB_COLUMNS} from meta_sync_jobs {where} order by id desc limit ?",
                [*args, limit],
            ).fetchall()
        return [_job(r) for r in rows]

    def claimable(self, now_ms: int) -> list[int]:
        """Queued jobs, and running ones whose lease expired (their worker died)."""
        with self.db() as db:
            rows = db.execute(
                "select id from meta_sync_jobs where state = ? or (state = ? and "
                "(lease_until is null or lease_until <= ?)) order by id",
                (QUEUED, RUNNING, now_ms),
            ).fetchall()
        return [int(r[0]) for r in rows]

    def take(self, job_id: int, holder: str, now_ms: int, lease_ms: int) -> Job | None:
        """The job, leased to ``holder``; None when another worker holds it.  A running
        job taken over from a dead worker keeps its state (the runner recovers it)."""
        with self.db() as db:
            cur = db.execute(
                "update meta_sync_jobs set holder = ?, lease_until = ?, state = ?, "
                "started_ms = coalesce(started_ms, ?) where id = ? and (state = ? or "
                "(state = ? and (lease_until is null or lease_until <= ? or holder = ?)))",
                (
                    holder,
                    now_ms + lease_ms,
                    RUNNING,
                    now_ms,
                    job_id,
                    QUEUED,
                    RUNNING,
                    now_ms,
                    holder,
                ),
            )
            if not cur.rowcount:
                return None
        return self.job(job_id)

    def save_job(
        self, job_id: int, holder: str, now_ms: int, lease_ms: int, /, **values: Any
    ) -> bool:
        """Update the job and renew its lease, only while ``holder`` holds it."""
        values = {k: _db_value(v) for k, v in values.items()}
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.db() as db:
            cur = db.execute(
                f"update meta_sync_jobs set {sets}{', ' if sets else ''}lease_until = ? "
                "where id = ? and holder = ? and state = ?",
                [*values.values(), now_ms + lease_ms, job_id, holder, RUNNING],
            )
            return bool(cur.rowcount)

    def due(self, now_ms: int) -> list[Sync]:
        """Scheduled syncs whose next run is due."""
        with self.db() as db:
            rows = db.execute(
                f"select {_SYNC_COLUMNS} from meta_syncs where every_ms is not null and "
                "next_due_ms is not null and next_due_ms <= ? order by next_due_ms, name",
                (now_ms,),
            ).fetchall()
        return [_sync(r) for r in rows]


def _db_value(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, dict) else v


def _sync(row: tuple[Any, ...]) -> Sync:
    vals = list(row)
    vals[14] = bool(vals[14])
    return Sync(*vals)


def _job(row: tuple[Any, ...]) -> Job:
    vals = list(row)
    vals[12] = bool(vals[12])
    vals[15] = json.loads(vals[15] or "{}")
    vals[16] = json.loads(vals[16] or "{}")
    return Job(*vals)
