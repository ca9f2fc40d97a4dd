"""Journeys, their versions, runs and step log, in STORE/deliveries.sqlite
(component "journeys" of audience.runtime.db.migrate), beside the delivery
log: a step's delivery, its step-log row and the run's new position are
written in ONE transaction of that file, so a crash keeps all or none of them.

- ``journeys``: one row per (node, name): state (draft, live, paused, ended),
  current version, when it went live (entries count from there).
- ``journey_versions``: immutable texts with their step ids (``step_paths``);
  a run names the version it entered with and stays on it.
- ``journey_runs``: one per (journey, contact, entry), unique, and unique per
  (journey, cause): the event, trigger firing or segment change that entered
  it, so replaying an ingest enters nobody twice.  ``step`` and ``since_ms``
  say where the run is and since when (event time); ``wake_ms`` when a wait
  ends or a check's deadline falls; ``watch`` the delivery key whose click or
  open a check waits for.
- ``journey_steps``: the append-only step log, unique on (run, step, seq).
- ``journey_signals``: the clicks and opens of journey deliveries, by key
  (what checks read: a decision by the event's own time, whatever the order
  in which events and the clock arrived).
- ``journey_segments``: a segment-entry journey's last membership (Arrow IPC).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlite_utils

from audience.runtime.db import Migration, immediate, migrate
from audience.runtime.triggers.batch import iso_ms

if TYPE_CHECKING:
    # (the delivery package is a tenth of a second to import, which an
    # ingest asking ``any_running`` of a store without journeys need not pay)
    from audience.runtime.delivery import DeliveryLog

DRAFT, LIVE, PAUSED, ENDED = "draft", "live", "paused", "ended"
STATES = (DRAFT, LIVE, PAUSED, ENDED)
# run states
WAITING = "waiting"  # at a wait or a check, until wake_ms or a signal
DONE = "done"  # reached an end
STOPPED = "stopped"  # its journey was ended while it waited
# what a waiting run waits for
BY_TIME, BY_SIGNAL, BY_COND = "time", "signal", "cond"


def _m0001_journeys(db: sqlite_utils.Database) -> None:
    db.execute(
        "create table journeys (id integer primary key, node text not null, "
        "name text not null, state text not null, version integer not null, "
        "live_ms integer,   -- when it first went live: entries count from here\n"
        "created_ms integer not null, updated_ms integer not null, unique (node, name))"
    )
    db.execute(
        "create table journey_versions (journey_id integer not null, version integer not null, "
        "text text not null, steps text not null, created_ms integer not null, "
        "primary key (journey_id, version))"
    )
    db.execute(
        """create table journey_runs (
            id integer primary key,
            journey_id integer not null,
            version integer not null,
            contact_id text not null,
            entry integer not null,          -- 1, 2, ... per (journey, contact)
            cause text not null,             -- what entered it
            state text not null,
            step text not null,              -- where it waits, or where it ended
            since_ms integer not null,       -- when it reached that step (event time)
            waits text,                      -- time | signal | cond (waiting runs)
            wake_ms integer,                 -- the wait's end, the check's deadline
            watch text,                      -- the delivery key a check waits on
            entered_ms integer not null,
            finished_ms integer,
            unique (journey_id, contact_id, entry),
            unique (journey_id, cause)
        )"""
    )
    db.execute("create index journey_runs_due on journey_runs (state, wake_ms)")
    db.execute("create index journey_runs_watch on journey_runs (watch) where watch is not null")
    db.execute(
        "create index journey_runs_cond on journey_runs (contact_id) "
        "where state = 'waiting' and waits = 'cond'"
    )
    db.execute(
        "create table journey_steps (run_id integer not null, step text not null, "
        "seq integer not null, kind text not null, at_ms integer not null, "
        "outcome text not null, delivery_key text, primary key (run_id, step, seq))"
    )
    db.execute(
        "create table journey_signals (node text not null, event_id text not null, "
        "key text not null, kind text not null, ts_ms integer not null, link text, "
        "link_text text, primary key (node, event_id))"
    )
    db.execute("create index journey_signals_key on journey_signals (key, ts_ms)")
    db.execute(
        "create table journey_segments (journey_id integer primary key, "
        "evaluated_ms integer not null, members blob not null)"
    )


MIGRATIONS: list[Migration] = [(1, "journeys, versions, runs, step log", _m0001_journeys)]


@dataclass(frozen=True)
class SavedJourney:
    id: int
    node: str
    name: str
    state: str
    version: int
    text: str
    live_ms: int | None
    created_ms: int
    updated_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "version": self.version,
            "text": self.text,
            "live_at": None if self.live_ms is None else iso_ms(self.live_ms),
            "created": iso_ms(self.created_ms),
            "updated": iso_ms(self.updated_ms),
        }


@dataclass(frozen=True)
class Run:
    id: int
    journey_id: int
    version: int
    contact_id: str
    entry: int
    cause: str
    state: str
    step: str
    since_ms: int
    waits: str | None
    wake_ms: int | None
    watch: str | None
    entered_ms: int
    finished_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "entry": self.entry,
            "state": self.state,
            "step": self.step,
            "since": iso_ms(self.since_ms),
            "waits_for": self.waits,
            "wake_at": None if self.wake_ms is None else iso_ms(self.wake_ms),
            "entered": iso_ms(self.entered_ms),
            "finished": None if self.finished_ms is None else iso_ms(self.finished_ms),
            "cause": self.cause,
        }


RUN_COLS = (
    "id, journey_id, version, contact_id, entry, cause, state, step, since_ms, waits, "
    "wake_ms, watch, entered_ms, finished_ms"
)
_J_COLS = "j.id, j.node, j.name, j.state, j.version, v.text, j.live_ms, j.created_ms, j.updated_ms"
_J_FROM = "from journeys j join journey_versions v on v.journey_id = j.id and v.version = j.version"


def rows_in(
    conn: sqlite3.Connection, sql: str, values: Sequence[Any], before: Sequence[Any] = ()
) -> Iterator[tuple[Any, ...]]:
    """The rows of ``sql``, whose ``in ({})`` takes ``values``, 500 at a time
    (``before``: the parameters ahead of them)."""
    for i in range(0, len(values), 500):
        part = list(values[i : i + 500])
        yield from conn.execute(sql.format(", ".join("?" * len(part))), [*before, *part])


def key_of(journey_id: int, version: int, step: str, contact_id: str, entry: int) -> str:
    """The delivery log's idempotency key of a journey action."""
    return f"journey:{journey_id}:v{version}:{step}:{contact_id}:{entry}"


class JourneyDefinitions:
    """The journey tables of a store, on the delivery log's connection (so one
    transaction covers a step's delivery and its step-log row)."""

    def __init__(self, log: DeliveryLog) -> None:
        self.log = log
        self._lock = threading.RLock()
        conn = log._conn
        db = sqlite_utils.Database(conn)
        with log._lock:
            if log.path is None:
                migrate(db, "journeys", MIGRATIONS)
            else:
                with open(log.path.with_name(log.path.name + ".lock"), "a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    migrate(db, "journeys", MIGRATIONS)
            conn.isolation_level = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction of the file (the delivery log's lock held)."""
        with self.log._lock, immediate(self.log._conn) as conn:
            yield conn

    def read(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.log._lock:
            return self.log._conn.execute(sql, list(params)).fetchall()

    # ------------------------------------------------------------ journeys
    def journeys(self, node: str | None = None) -> list[SavedJourney]:
        where, params = ("where j.node = ?", [node]) if node is not None else ("", [])
        rows = self.read(f"select {_J_COLS} {_J_FROM} {where} order by j.node, j.name", params)
        return [SavedJourney(*r) for r in rows]

    def get(self, node: str, name: str) -> SavedJourney | None:
        rows = self.read(
            f"select {_J_COLS} {_J_FROM} where j.node = ? and j.name = ?", [node, name]
        )
        return SavedJourney(*rows[0]) if rows else None

    def by_id(self, journey_id: int) -> SavedJourney | None:
        rows = self.read(f"select {_J_COLS} {_J_FROM} where j.id = ?", [journey_id])
        return SavedJourney(*rows[0]) if rows else None

    def version_text(self, journey_id: int, version: int) -> str | None:
        rows = self.read(
            "select text from journey_versions where journey_id = ? and version = ?",
            [journey_id, version],
        )
        return str(rows[0][0]) if rows else None

    def versions(self, journey_id: int) -> list[int]:
        rows = self.read(
            "select version from journey_versions where journey_id = ? order by version",
            [journey_id],
        )
        return [int(r[0]) for r in rows]

    def generation(self) -> tuple[Any, ...]:
        """Changes whenever a journey is saved or changes state (caches key on it)."""
        return tuple(self.read("select count(*), max(updated_ms), sum(version) from journeys")[0])

    def any_running(self, node: str) -> bool:
        """A live or paused journey in ``node`` (a paused one still records the
        clicks and opens its runs will read when it goes live again)."""
        rows = self.read(
            "select 1 from journeys where node = ? and state in (?, ?) limit 1",
            [node, LIVE, PAUSED],
        )
        return bool(rows)

    # ------------------------------------------------------------ runs
    def runs_of(self, journey_id: int, contact_id: str) -> list[Run]:
        rows = self.read(
            f"select {RUN_COLS} from journey_runs where journey_id = ? and contact_id = ? "
            "order by entry",
            [journey_id, contact_id],
        )
        return [Run(*r) for r in rows]

    def step_log(self, run_ids: list[int]) -> list[dict[str, Any]]:
        if not run_ids:
            return []
        marks = ", ".join("?" * len(run_ids))
        rows = self.read(
            "select s.run_id, r.entry, r.version, s.step, s.seq, s.kind, s.at_ms, s.outcome, "
            f"s.delivery_key from journey_steps s join journey_runs r on r.id = s.run_id "
            f"where s.run_id in ({marks}) order by r.entry, s.at_ms, s.rowid",
            run_ids,
        )
        return [
            {
                "entry": entry,
                "version": version,
                "step": step,
                "seq": seq,
                "kind": kind,
                "at": iso_ms(at),
                "outcome": json.loads(outcome),
                "delivery_key": dkey,
            }
            for _, entry, version, step, seq, kind, at, outcome, dkey in rows
        ]


def run_from(row: tuple[Any, ...]) -> Run:
    return Run(*row)


def _read_only(root: Path, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Rows of the store's journey tables, read without opening the delivery
    log (none when it or they do not exist yet)."""
    from audience.runtime.delivery.schema import FILE

    path = root / FILE
    if not path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # no journey tables yet
        return []


def any_running(root: Path, node: str) -> bool:
    """Whether the store at ``root`` has a live or paused journey in ``node``,
    or runs of that node waiting for a click (so its ingests must reach the
    journeys; another node's runs never read them); cheap,
    so an ingest into a store without journeys stays cheap."""
    rows = _read_only(
        root,
        "select exists (select 1 from journeys where node = ? and state in (?, ?)) "
        "or exists (select 1 from journey_runs r join journeys j on j.id = r.journey_id "
        "where r.watch is not null and j.node = ?)",
        [node, LIVE, PAUSED, node],
    )
    return bool(rows and rows[0][0])


def journey_names(root: Path, node: str) -> list[str]:
    """The saved journeys of ``node`` (what ``enter_journey`` may name)."""
    return [r[0] for r in _read_only(root, "select name from journeys where node = ?", [node])]
