"""The journeys of one store node at work: entries, wake-ups, ingested events.

- ``advance(now)``: the runs due by ``now`` (a wait that ended, a check's
  deadline) of live journeys, in batches of ``BATCH``: each batch is read,
  its contacts' messages rendered at once, then moved in ONE write
  transaction that re-reads every run first, so of two schedulers at once
  the second finds the runs already moved (the write lock is the lease:
  nothing of a step happens outside it).  Segment entries are checked too,
  at most once a minute per journey.
- ``on_events(batch)``: called by the trigger engine for every ingest (from
  its journal, so a crash after the ingest is caught up): clicks and opens of
  journey deliveries are recorded as signals and the runs watching them
  moved; ``enter on`` journeys enter the contacts whose events match; runs
  waiting on a condition are decided at their contact's new events; segment
  entries are checked.
- ``enter(...)``: one contact into one journey (``enter_journey``, the API).

Entry rules: the journey is live and past its start; ``once per contact``
refuses a second entry, ``again after D`` one within D of the last entry
(by event time); the cause (event, firing, segment change) enters once.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from audience.dsl.ast import Segment, Trigger
from audience.dsl.ast_journeys import EnterOn, EnterSegment
from audience.runtime.delivery import DeliveryLog
from audience.runtime.journeys.advance import FAILED, Mover
from audience.runtime.journeys.context import Context
from audience.runtime.journeys.definitions import (
    LIVE,
    RUN_COLS,
    WAITING,
    JourneyDefinitions,
    Run,
    SavedJourney,
    rows_in,
)
from audience.runtime.journeys.steps import Catalog, Compiled, JourneyUnreadable
from audience.runtime.plans.clock import Clock, wall_clock
from audience.runtime.plans.definitions import PlanDefinitions
from audience.runtime.plans.frozen import strings
from audience.runtime.triggers.actions import ProfileUpdates
from audience.timecalc import plus

if TYPE_CHECKING:
    import sqlite3

    from audience.runtime.node import Node
    from audience.runtime.triggers.batch import EventBatch

log = logging.getLogger("audience.journeys")
BATCH = 5000  # runs moved per transaction (it holds the write lock for about half a second)
BATCH_ENV = "AUDIENCE_JOURNEYS_BATCH"  # test-only: smaller batches
SEGMENT_EVERY_MS = 60_000
SIGNAL_TYPES = {"email_clicked": "clicked", "email_opened": "opened"}


@dataclass
class AdvanceReport:
    now_ms: int
    woken: int = 0  # due runs moved
    entered: int = 0
    moved: int = 0  # runs moved by events (clicks, opens, conditions)
    done: int = 0  # runs that finished
    failed: int = 0
    batches: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # entries refused, by why

    def merge(self, other: AdvanceReport) -> None:
        for k in ("woken", "entered", "moved", "done", "failed", "batches"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.skipped.update(other.skipped)

    def to_dict(self) -> dict[str, Any]:
        from audience.runtime.triggers.batch import iso_ms

        return {
            "now": iso_ms(self.now_ms),
            "woken": self.woken,
            "entered": self.entered,
            "moved": self.moved,
            "done": self.done,
            "failed": self.failed,
            "skipped": dict(self.skipped),
        }

    def lines(self) -> list[str]:
        d = self.to_dict()
        out = [
            f"{d['now']}: woke {self.woken}, entered {self.entered}, moved {self.moved}, "
            f"finished {self.done}, failed {self.failed}"
        ]
        out += [f"  not entered ({why}): {n}" for why, n in sorted(self.skipped.items())]
        return out


class JourneyRuntime:
    def __init__(
        self,
        store: Node,
        clock: Clock = wall_clock,
        log_: DeliveryLog | None = None,
        defs: JourneyDefinitions | None = None,
    ) -> None:
        self.store = store
        self.node = store.node
        self.clock = clock
        self.log = log_ if log_ is not None else (defs.log if defs else store.triggers.log)
        self.defs = defs if defs is not None else JourneyDefinitions(self.log)
        self.catalog = Catalog(self.defs.version_text, self.log.uid)
        self.mover = Mover(store, self.log)
        self.plan_defs = PlanDefinitions.for_store(store.path)
        self._matchers: dict[tuple[int, int], Any] = {}
        self.replay = False  # a dry run's: deliveries decided at their due time, no profile writes

    @property
    def replay(self) -> bool:
        return self.mover.replay

    @replay.setter
    def replay(self, on: bool) -> None:
        self.mover.replay = on

    # ------------------------------------------------------------------ helpers
    def context(self, contacts: Iterable[str], now: int) -> Context:
        return Context(self.store, self.plan_defs, set(contacts), now, dry=self.replay)

    def compiled(self, saved: SavedJourney) -> Compiled:
        return self.catalog.get(saved.id, saved.version)

    def live(self) -> list[tuple[SavedJourney, Compiled]]:
        out = []
        for saved in self.defs.journeys(self.node):
            if saved.state != LIVE:
                continue
            try:
                out.append((saved, self.compiled(saved)))
            except JourneyUnreadable as exc:
                log.error("journey %r cannot run: %s", saved.name, exc)
        return out

    def _move(
        self,
        conn: sqlite3.Connection,
        ctx: Context,
        runs: list[Run],
        report: AdvanceReport,
        *,
        timed: bool = True,
    ) -> list[Run]:
        """Move each of ``runs`` that is still as read (another process may have
        moved it meanwhile); a run whose step fails is marked failed alone."""
        sql = f"select {RUN_COLS} from journey_runs where id in ({{}})"
        current = {row[0]: Run(*row) for row in rows_in(conn, sql, [r.id for r in runs])}
        # and whose journey is still live (a pause or an end may have come meanwhile)
        live = {row[0] for row in conn.execute("select id from journeys where state = ?", [LIVE])}
        todo = [r for r in runs if current.get(r.id) == r and r.journey_id in live]
        readable = []
        for r in todo:
            with contextlib.suppress(JourneyUnreadable):  # fails in its own move below
                readable.append((self.catalog.get(r.journey_id, r.version), r))
        self.mover.prefetch_signals(conn, ctx, readable)

        def move(run: Run, rep: AdvanceReport) -> Run:
            c = self.catalog.get(run.journey_id, run.version)
            new = self.mover.proceed(conn, ctx, c, run, ctx.now, timed=timed)
            rep.done += new.state != WAITING
            return new

        def fail(run: Run, exc: Exception, rep: AdvanceReport) -> None:
            self._failed(conn, run.id, run.step, ctx.now, exc, rep)

        return [r for r in self._each(conn, ctx, todo, move, fail, report) if r is not None]

    def _each(
        self,
        conn: sqlite3.Connection,
        ctx: Context,
        items: list[Any],
        one: Callable[[Any, AdvanceReport], Any],
        fail: Callable[[Any, Exception, AdvanceReport], Any],
        report: AdvanceReport,
    ) -> list[Any]:
        """``one(item)`` for each item, all in one savepoint (the fast path);
        when one raises, all are rolled back and redone each in its own
        savepoint, the failing ones handed to ``fail``."""
        trial = AdvanceReport(ctx.now)
        conn.execute("savepoint batch")
        try:
            out = [one(item, trial) for item in items]
            self.mover.flush(conn)
            conn.execute("release batch")
            report.merge(trial)
            return out
        except Exception:  # redone one by one below
            conn.execute("rollback to batch")
            conn.execute("release batch")
            self.mover.discard()
            ctx.updates = ProfileUpdates()
        except BaseException:  # the transaction rolls back: nothing gathered stays
            self.mover.discard()
            raise
        out = []
        trial = AdvanceReport(ctx.now)
        for item in items:
            conn.execute("savepoint one")
            kept = copy.deepcopy(ctx.updates)
            try:
                out.append(one(item, trial))
                self.mover.flush(conn)
            except Exception as exc:  # one broken run must not stop the others
                conn.execute("rollback to one")
                self.mover.discard()
                ctx.updates = kept
                log.exception("a journey step failed")
                out.append(fail(item, exc, trial))
                self.mover.flush(conn)
            conn.execute("release one")
        report.merge(trial)
        return out

    def _failed(
        self,
        conn: sqlite3.Connection,
        run_id: int,
        step: str,
        now: int,
        exc: Exception,
        report: AdvanceReport,
    ) -> None:
        """A run whose step raised: logged, and left out of later batches."""
        self.mover.log_step(conn, run_id, step, "failed", now, {"why": repr(exc)})
        conn.execute(
            "update journey_runs set state = ?, finished_ms = ?, waits = null, wake_ms = null, "
            "watch = null where id = ?",
            [FAILED, now, run_id],
        )
        report.failed += 1

    # ------------------------------------------------------------------ time
    def advance(self, now: int | None = None, *, batch: int | None = None) -> AdvanceReport:
        now = self.clock() if now is None else now
        batch = batch or int(os.environ.get(BATCH_ENV) or BATCH)
        report = AdvanceReport(now)
        self.segment_entries(now, report, every_ms=SEGMENT_EVERY_MS)
        last: list[int] = []
        while True:
            rows = self.defs.read(
                f"select {', '.join('r.' + c.strip() for c in RUN_COLS.split(','))} "
                "from journey_runs r join journeys j on j.id = r.journey_id "
                "where r.state = ? and r.wake_ms <= ? and j.state = ? and j.node = ? "
                "order by r.wake_ms, r.id limit ?",
                [WAITING, now, LIVE, self.node, batch],
            )
            runs = [Run(*r) for r in rows]
            ids = [r.id for r in runs]
            if not runs or ids == last:
                break  # nothing due, or only runs another scheduler is moving
            last = ids
            ctx = self.context((r.contact_id for r in runs), now)
            with self.defs.transaction() as conn:
                moved = self._move(conn, ctx, runs, report)
            ctx.apply_updates()
            report.woken += len(moved)
            report.batches += 1
        return report

    def resume(self, journey_id: int, now: int | None = None) -> AdvanceReport:
        """A paused journey live again: every waiting run is looked at once, so a
        check whose deadline passed meanwhile is decided by its events' times."""
        now = self.clock() if now is None else now
        report = AdvanceReport(now)
        after = 0
        while True:
            rows = self.defs.read(
                f"select {RUN_COLS} from journey_runs where journey_id = ? and state = ? "
                "and id > ? order by id limit ?",
                [journey_id, WAITING, after, BATCH],
            )
            if not rows:
                return report
            runs = [Run(*r) for r in rows]
            after = runs[-1].id
            ctx = self.context((r.contact_id for r in runs), now)
            with self.defs.transaction() as conn:
                report.woken += len(self._move(conn, ctx, runs, report))
            ctx.apply_updates()

    # ------------------------------------------------------------------ entries
    def enter_many(
        self,
        entries: list[tuple[SavedJourney, str, int, str]],
        now: int,
        report: AdvanceReport,
        ctx: Context | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> list[tuple[Run | None, str]]:
        """Enter each (journey, contact, at, cause); returns (run, why not)."""
        if not entries:
            return []
        own = ctx is None
        ctx = ctx or self.context((e[1] for e in entries), now)
        if conn is None:
            with self.defs.transaction() as conn:
                out = self._enter_all(conn, ctx, entries, report)
        else:
            out = self._enter_all(conn, ctx, entries, report)
        if own:
            ctx.apply_updates()
        return out

    def _enter_all(
        self,
        conn: sqlite3.Connection,
        ctx: Context,
        entries: list[tuple[SavedJourney, str, int, str]],
        report: AdvanceReport,
    ) -> list[tuple[Run | None, str]]:
        def one(e: tuple[SavedJourney, str, int, str], rep: AdvanceReport) -> Any:
            return self._enter(conn, ctx, *e, rep)

        def fail(
            e: tuple[SavedJourney, str, int, str], exc: Exception, rep: AdvanceReport
        ) -> tuple[Run | None, str]:
            run = self._insert_run(conn, *e)
            self._failed(conn, run.id, run.step, ctx.now, exc, rep)
            return replace(run, state=FAILED), ""

        out: list[tuple[Run | None, str]] = self._each(conn, ctx, entries, one, fail, report)
        return out

    def _insert_run(
        self, conn: sqlite3.Connection, saved: SavedJourney, contact_id: str, at: int, cause: str
    ) -> Run:
        entry = conn.execute(
            "select coalesce(max(entry), 0) + 1 from journey_runs "
            "where journey_id = ? and contact_id = ?",
            [saved.id, contact_id],
        ).fetchone()[0]
        cur = conn.execute(
            "insert into journey_runs (journey_id, version, contact_id, entry, cause, state, "
            "step, since_ms, entered_ms) values (?, ?, ?, ?, ?, ?, '0', ?, ?)",
            [saved.id, saved.version, contact_id, entry, cause, WAITING, at, at],
        )
        run = Run(
            int(cur.lastrowid or 0), saved.id, saved.version, contact_id, entry, cause,
            WAITING, "0", at, None, None, None, at, None,
        )  # fmt: skip
        self.mover.log_step(conn, run.id, "0", "entered", at, {"cause": cause})
        return run

    def _enter(
        self,
        conn: sqlite3.Connection,
        ctx: Context,
        saved: SavedJourney,
        contact_id: str,
        at: int,
        cause: str,
        report: AdvanceReport,
    ) -> tuple[Run | None, str]:
        why = self._refuse(conn, saved, contact_id, at, cause)
        if why:
            report.skipped[why] += 1
            return None, why
        c = self.compiled(saved)
        run = self._insert_run(conn, saved, contact_id, at, cause)
        # an entry does not pass time: a wait or deadline already over is the next advance's
        new = self.mover.proceed(conn, ctx, c, run, now=ctx.now, fresh=True, timed=False)
        report.entered += 1
        report.done += new.state != WAITING
        return new, ""

    def _refuse(
        self, conn: sqlite3.Connection, saved: SavedJourney, contact_id: str, at: int, cause: str
    ) -> str:
        row = conn.execute("select state from journeys where id = ?", [saved.id]).fetchone()
        if row is None or row[0] != LIVE:
            return f"the journey is {row[0] if row else 'deleted'}"
        c = self.compiled(saved)
        start = c.start_ms(saved.live_ms)
        if start is None or at < start:
            return "before the journey's start"
        last = conn.execute(
            "select max(entered_ms) from journey_runs where journey_id = ? and contact_id = ?",
            [saved.id, contact_id],
        ).fetchone()[0]
        if last is not None:
            again = c.journey.reentry.again_after
            if again is None:
                return "once per contact"
            if at < plus(int(last), again, c.tz):
                return "entered again too soon"
        if conn.execute(
            "select 1 from journey_runs where journey_id = ? and cause = ?", [saved.id, cause]
        ).fetchone():
            return "already entered by this"
        return ""

    # ------------------------------------------------------------------ segments
    def segment_entries(
        self, now: int, report: AdvanceReport, *, every_ms: int = 0, only: int | None = None
    ) -> None:
        """Enter the contacts who joined a ``enter segment`` journey's segment
        since it was last evaluated: the membership difference, as Arrow arrays."""
        for saved, c in self.live():
            entry = c.journey.entry
            if not isinstance(entry, EnterSegment) or (only is not None and saved.id != only):
                continue
            start = c.start_ms(saved.live_ms)
            if start is None or now < start:
                continue
            prev = self.defs.read(
                "select evaluated_ms, members from journey_segments where journey_id = ?",
                [saved.id],
            )
            if prev and now - int(prev[0][0]) < every_ms:
                continue
            members = self._members(entry.segment, now)
            if members is None:
                continue
            blob = _blob(members)
            with self.defs.transaction() as conn:
                row = conn.execute(
                    "select evaluated_ms, members from journey_segments where journey_id = ?",
                    [saved.id],
                ).fetchone()
                if row is not None and int(row[0]) >= now:
                    continue  # another process evaluated it as late or later
                if row is not None:  # the first evaluation is the baseline
                    before = _unblob(row[1])
                    joined = pc.filter(members, pc.invert(pc.is_in(members, before)))
                    ctx = self.context(joined.to_pylist(), now)
                    entries = [
                        (saved, cid, now, f"segment:{entry.segment}:{now}:{cid}")
                        for cid in joined.to_pylist()
                    ]
                    self.enter_many(entries, now, report, ctx, conn)
                conn.execute(
                    "insert or replace into journey_segments (journey_id, evaluated_ms, members) "
                    "values (?, ?, ?)",
                    [saved.id, now, blob],
                )

    def _members(self, segment: str, now: int) -> pa.Array | None:
        from audience.dsl.ast import InSegment
        from audience.dsl.errors import DslError

        try:
            seg = self.store.segment_compiler.compile_segment(
                Segment(name=f"<journey entry {segment}>", cond=InSegment(segment)),
                text="",
                filename="<journey>",
            )
        except DslError as exc:
            log.error("segment %r of a journey cannot be evaluated: %s", segment, exc)
            return None
        snapshot = self.store.snapshot()
        idx = seg.compiled.evaluate(snapshot, now).indexes()
        return strings(snapshot.contact_ids).take(pa.array(idx))

    # ------------------------------------------------------------------ events
    def wants_events(self) -> bool:
        return self.defs.any_running(self.node) or self._has_signal_waiters()

    def _has_signal_waiters(self) -> bool:
        return bool(self.defs.read("select 1 from journey_runs where watch is not null limit 1"))

    def on_events(
        self,
        batch: EventBatch,
        entries: list[tuple[str, str, int, str]] = (),  # type: ignore[assignment]
    ) -> AdvanceReport:
        """An ingest's events (and the ``enter_journey`` actions its triggers ran:
        (journey name, contact, time, cause))."""
        now = self.clock()
        report = AdvanceReport(now)
        signals = _signals(batch, self.node)
        live = self.live()
        by_name = {s.name: s for s, _ in live}
        todo: list[tuple[SavedJourney, str, int, str]] = []
        for name, cid, at, cause in entries:
            saved = by_name.get(name) or self.defs.get(self.node, name)
            if saved is None:
                report.skipped["no such journey"] += 1
                continue
            todo.append((saved, cid, at, cause))
        for saved, c in live:
            if isinstance(c.journey.entry, EnterOn):
                todo += self._event_entries(saved, c, batch)
        dense = {batch.contact_id(row): batch.contact(row) for row in range(len(batch))}
        ctx = self.context({t[1] for t in todo}, now)
        ctx.know(batch.snapshot, dense)
        with self.defs.transaction() as conn:
            if signals:
                conn.executemany(
                    "insert or ignore into journey_signals (node, event_id, key, kind, ts_ms, "
                    "link, link_text) values (?, ?, ?, ?, ?, ?, ?)",
                    signals,
                )
            self.enter_many(todo, now, report, ctx, conn)
            waiting = self._waiters(conn, sorted({s[2] for s in signals}), sorted(dense))
            ctx.contacts |= {r.contact_id for r in waiting}
            report.moved += len(self._move(conn, ctx, waiting, report, timed=False))
        ctx.apply_updates()
        self.segment_entries(now, report)
        return report

    def _waiters(self, conn: sqlite3.Connection, keys: list[str], contacts: list[str]) -> list[Run]:
        """Live journeys' runs waiting on one of ``keys``, or on a condition of
        one of ``contacts``."""
        cols = ", ".join("r." + c.strip() for c in RUN_COLS.split(","))
        base = (
            f"select {cols} from journey_runs r join journeys j on j.id = r.journey_id "
            "where r.state = 'waiting' and j.state = 'live' and j.node = ? "
        )
        found = {
            row[0]: Run(*row)
            for row in rows_in(conn, base + "and r.watch in ({})", keys, [self.node])
        }
        cond = (  # the partial index holds exactly those runs: no scan of the waiting ones
            "select 1 from journey_runs indexed by journey_runs_cond "
            "where state = 'waiting' and waits = 'cond' limit 1"
        )
        if conn.execute(cond).fetchone():
            sql = base + "and r.waits = 'cond' and r.contact_id in ({})"
            for row in rows_in(conn, sql, contacts, [self.node]):
                found[row[0]] = Run(*row)
        return [found[k] for k in sorted(found)]

    def _event_entries(
        self, saved: SavedJourney, c: Compiled, batch: EventBatch
    ) -> list[tuple[SavedJourney, str, int, str]]:
        from audience.runtime.triggers.matcher import TriggerSet, condition_holds

        ct = self._matcher(saved, c)
        if ct is None:
            return []
        matches = TriggerSet([ct]).match(batch, self.store.triggers._luts)
        holds = condition_holds(matches, batch)
        return [
            (saved, batch.contact_id(m.row), batch.ts(m.row), f"event:{batch.event_key(m.row)}")
            for m, ok in zip(matches, holds, strict=True)
            if ok
        ]

    def _matcher(self, saved: SavedJourney, c: Compiled) -> Any:
        """``enter on E where P if C`` compiled as a trigger's ``on``/``where``/``if``."""
        from audience.dsl.errors import DslError
        from audience.runtime.saved import saved_segments
        from audience.runtime.triggers.definitions import SavedTrigger
        from audience.runtime.triggers.matcher import compile_trigger

        key = (saved.id, saved.version)
        if key not in self._matchers:
            entry = c.journey.entry
            assert isinstance(entry, EnterOn)
            t = Trigger(
                name=saved.name,
                events=entry.events,
                where=entry.where,
                condition=entry.condition,
                actions=(),
                timezone=c.tz if c.tz != "UTC" else None,
            )
            st = SavedTrigger(saved.name, saved.text, saved.version, True, None, None, "", "")
            try:
                resolver = saved_segments(self.store).get
                self._matchers[key] = compile_trigger(st, t, self.store.schema, resolver)
            except DslError as exc:
                log.error("journey %r cannot take entries: %s", saved.name, exc)
                self._matchers[key] = None
        return self._matchers[key]


def _signals(batch: EventBatch, node: str) -> list[tuple[Any, ...]]:
    """(node, event id, delivery key, kind, ts, link, link text) of the batch's
    human clicks and opens of journey deliveries."""
    out = []
    names = batch.snapshot.event_types.values
    for code, (a, b) in batch.slices.items():
        kind = SIGNAL_TYPES.get(names[code])
        if kind is None:
            continue
        for row in range(a, b):
            key = batch.value("delivery_key", row)
            if not isinstance(key, str) or not key.startswith("journey:"):
                continue
            if batch.value("bot", row) is True:
                continue  # scanners click everything: no decision on them
            link = batch.value("link", row) if kind == "clicked" else None
            text = batch.value("link_text", row) if kind == "clicked" else None
            out.append((node, batch.event_key(row), key, kind, batch.ts(row), link, text))
    return out


def _blob(members: pa.Array) -> bytes:
    sink = pa.BufferOutputStream()
    table = pa.table({"contact_id": members.cast(pa.string())})
    with ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _unblob(blob: bytes) -> pa.Array:
    table = ipc.open_stream(pa.py_buffer(blob)).read_all()
    return table.column("contact_id").combine_chunks()
