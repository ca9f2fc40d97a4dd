"""The trigger engine of one node: ``node.triggers`` (audience.runtime.node).

Definitions: ``add`` (triggers, and the DND policies written beside them),
``add_policies``, ``add_template``, checked against the store's schema, saved
segments and policies (errors as docs/language/index.md#errors).

Running: the node's store calls ``discard_after``, ``before_commit`` (journal
the accepted events) and ``after_commit`` (match them) around every event
ingest (it is the store's ``watcher``); ``process`` is the
matching itself: ``on/where`` (matcher), ``already fired?``, ``if``, the
options, then the actions (actions.py), and the firings recorded last, in
the transaction that deletes the ingest's journal (state.py).  The deliveries
of up to ``GROUP`` firings share one transaction of the delivery log.

``after_commit``'s report is what the store returns as ``IngestReport.triggers``;
it counts the events older than a trigger's valid-from (``too_old``), which
fire nothing: a trigger reacts to what happens after it is saved.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from audience.dsl.ast import (
    AtMostOncePer,
    Delay,
    DndPolicy,
    OncePerContact,
    Program,
    Trigger,
)
from audience.dsl.errors import DslError
from audience.dsl.parser import parse
from audience.engine.strings import LutCache
from audience.runtime.delivery import Delivery, DeliveryLog, Policy
from audience.runtime.saved import saved_segments
from audience.runtime.store.errors import StoreError
from audience.runtime.triggers.actions import ActionRun, Requester, run_actions
from audience.runtime.triggers.batch import EventBatch, journal_table
from audience.runtime.triggers.clock import now_ms as clock_ms
from audience.runtime.triggers.definitions import (
    BEFORE_VALID_FROM,
    DEFINITIONS_FILE,
    SavedPolicy,
    SavedTemplate,
    SavedTrigger,
    TriggerDefinitions,
)
from audience.runtime.triggers.matcher import TriggerSet, compile_trigger, condition_holds
from audience.runtime.triggers.state import Firing, FiringState, Journal, NodeState
from audience.runtime.triggers.templates import CompiledTemplate, compiled
from audience.timecalc import minus, plus

if TYPE_CHECKING:
    from audience.runtime.journeys.engine import AdvanceReport, JourneyRuntime
    from audience.runtime.node import Node

log = logging.getLogger("audience.triggers")
GROUP = 500  # matches decided per transaction of the delivery log


@dataclass
class Pending:
    """An ingest's accepted events between its journal and its matching."""

    version: int
    table: pa.Table
    journal: Journal | None  # None: an in-memory store keeps no journal


@dataclass
class BatchReport:
    events: int = 0
    matched: int = 0  # (trigger, event) pairs whose on/where held
    fired: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # why a match did not fire
    deliveries: list[Delivery] = field(default_factory=list)
    firings: list[Firing] = field(default_factory=list)
    # per trigger: matching events dated before its valid-from (not fired live;
    # a dry run replays them anyway)
    too_old: Counter[str] = field(default_factory=Counter)
    journeys: AdvanceReport | None = None  # what the ingest did to journeys

    def merge(self, other: BatchReport) -> None:
        self.events += other.events
        self.matched += other.matched
        self.fired += other.fired
        self.skipped.update(other.skipped)
        self.deliveries.extend(other.deliveries)
        self.firings.extend(other.firings)
        self.too_old.update(other.too_old)
        if other.journeys is not None:
            if self.journeys is None:
                self.journeys = other.journeys
            else:
                self.journeys.merge(other.journeys)

    def too_old_note(self) -> str | None:
        """Why loaded history fired nothing, in a sentence (None: no such events)."""
        if not self.too_old:
            return None
        n = sum(self.too_old.values())
        per = ", ".join(f"{c} for {name!r}" for name, c in sorted(self.too_old.items()))
        return (
            f"{n} matching event{'' if n == 1 else 's'} older than the trigger's valid-from "
            f"fired nothing ({per}): a trigger reacts only to events at or after the moment it "
            "was saved; 'triggers dry-run' replays history"
        )


_D = TypeVar("_D", Trigger, DndPolicy)


def _parse(text: str, filename: str) -> Program:
    return parse(text, filename=filename)


def parse_trigger(text: str, name: str | None = None) -> Trigger:
    return _one(text, name, Trigger, "trigger")


def parse_policy(text: str, name: str | None = None) -> DndPolicy:
    return _one(text, name, DndPolicy, "dnd")


def _one(text: str, name: str | None, kind: type[_D], word: str) -> _D:
    """The one definition of ``kind`` a saved text holds."""
    program = _parse(text, f"<{word} {name!r}>" if name else f"<{word}>")
    found = [d for d in program.definitions if isinstance(d, kind)]
    if len(found) != 1:
        what = "trigger" if word == "trigger" else "DND policy"
        raise StoreError(f"a saved {what} is one {word} definition; found {len(found)}")
    return found[0]


def _source(text: str, d: Trigger | DndPolicy) -> str:
    """The text of one definition (the lines its span covers)."""
    if d.span.line == 0:
        from audience.dsl.formatter import format_text

        return format_text(d)
    lines = text.splitlines()
    return "\n".join(lines[d.span.line - 1 : d.span.end_line]).strip() + "\n"


class TriggerEngine:
    def __init__(self, store: Node) -> None:
        self.store = store
        root = store.path
        self.defs = TriggerDefinitions(None if root is None else root / DEFINITIONS_FILE)
        self.state = NodeState(None if store.home is None else store.home / "triggers")
        self._log: DeliveryLog | None = None
        self._luts = LutCache()
        self._lock = threading.RLock()
        self._key: Any = None
        self._reads_segments = True  # some active trigger may name a saved segment
        self._set = TriggerSet(())
        self._policies: dict[str, Policy | None] = {}
        self._templates: dict[str, CompiledTemplate | None] = {}
        self.errors: list[str] = []  # problems met while matching (also logged)
        self._journeys: JourneyRuntime | None = None

    # ------------------------------------------------------------------ log
    @property
    def log(self) -> DeliveryLog:
        with self._lock:
            if self._log is None:
                self._log = DeliveryLog.open(self.store.path)
            return self._log

    def use_log(self, delivery_log: DeliveryLog) -> None:
        """Record deliveries in ``delivery_log`` (a shared one) instead of the store's."""
        with self._lock:
            self._log = delivery_log

    @property
    def journeys(self) -> JourneyRuntime:
        """The node's journeys, which every ingest moves too (entries, clicks)."""
        from audience.runtime.journeys.engine import JourneyRuntime

        with self._lock:
            if self._journeys is None:
                self._journeys = JourneyRuntime(self.store, clock_ms, self.log)
            return self._journeys

    # ---------------------------------------------------------- definitions
    def check(self, text: str, filename: str = "<input>") -> Program:
        """Parse and check ``text`` against the store (raises DslError): the
        same checker, names and messages as ``audience check --store``."""
        from audience.runtime.triggers.known import check_text

        return check_text(self.store, text, filename)

    def add(
        self,
        text: str,
        filename: str = "<input>",
        *,
        enabled: bool = True,
        valid_from_ms: int | None = None,
        valid_until_ms: int | None = None,
    ) -> tuple[list[SavedTrigger], list[SavedPolicy]]:
        """Save every trigger of ``text`` and the DND policies written beside them.

        ``valid_from_ms``: the first event time the triggers react to; default the
        moment a trigger is first saved (the clock, audience.runtime.triggers.clock),
        and a trigger saved again keeps the one it had.  An earlier one replays
        history on purpose."""
        program = self.check(text, filename)
        return self._save(text, program, enabled, valid_from_ms, valid_until_ms)

    def _save(
        self,
        text: str,
        program: Program,
        enabled: bool = True,
        valid_from_ms: int | None = None,
        valid_until_ms: int | None = None,
        *,
        triggers: bool = True,
    ) -> tuple[list[SavedTrigger], list[SavedPolicy]]:
        defs = program.definitions
        policies = [(d.name, _source(text, d)) for d in defs if isinstance(d, DndPolicy)]
        found = [(d.name, _source(text, d)) for d in defs if isinstance(d, Trigger)]
        saved_p, saved_t = self.defs.save_all(
            policies, found if triggers else [], enabled, valid_from_ms, valid_until_ms
        )
        return saved_t, saved_p

    def add_policies(self, text: str, filename: str = "<input>") -> list[SavedPolicy]:
        program = self.check(text, filename)
        return self._save(text, program, triggers=False)[1]

    def add_template(self, name: str, subject: str, html: str, text: str) -> SavedTemplate:
        """Raises TemplateError when a part does not parse."""
        _compile_template(SavedTemplate(name, subject, html, text, 0, "", ""))
        return self.defs.save_template(name, subject, html, text)

    # -------------------------------------------------------------- running
    def active(self) -> TriggerSet:
        """The enabled triggers, compiled (cached until a definition changes)."""
        gen = self.defs.generation()
        with self._lock:
            if self._key is not None and self._key[0] == gen and not self._reads_segments:
                return self._set  # the saved segments cannot change it: not read
        seg_versions = tuple((s.name, s.version) for s in self.store.list_segments())
        key = (gen, seg_versions)
        with self._lock:
            if key == self._key:
                return self._set
            resolver = saved_segments(self.store).get
            compiled_triggers = []
            saved_triggers = [t for t in self.defs.list_triggers() if t.enabled]
            # a trigger can name a segment only where its text says "segment"
            self._reads_segments = any("segment" in t.text.lower() for t in saved_triggers)
            for saved in saved_triggers:
                try:
                    ast = parse_trigger(saved.text, saved.name)
                    ct = compile_trigger(saved, ast, self.store.schema, resolver)
                except (DslError, StoreError) as exc:
                    self._error(f"trigger {saved.name!r} cannot run: {exc}")
                    continue
                compiled_triggers.append(ct)
            self._set = TriggerSet(compiled_triggers)
            self._policies = {}
            self._templates = {}
            self._key = key
            return self._set

    def _error(self, message: str) -> None:
        log.error("%s", message)
        self.errors.append(message)
        del self.errors[:-100]

    def policy(self, name: str) -> Policy | None:
        with self._lock:
            if name not in self._policies:
                saved = self.defs.get_policy(name)
                self._policies[name] = (
                    None if saved is None else Policy.from_ast(parse_policy(saved.text, name))
                )
            return self._policies[name]

    def template(self, name: str) -> CompiledTemplate | None:
        with self._lock:
            if name not in self._templates:
                saved = self.defs.get_template(name)
                self._templates[name] = None if saved is None else _compile_template(saved)
            return self._templates[name]

    def discard_after(self, version: int) -> None:
        """Called by the store at an ingest's start, under its ingest lock."""
        self.state.discard_after(version)

    def before_commit(
        self, version: int, new_events: list[tuple[pa.Array, pa.Table]]
    ) -> Pending | None:
        """Called by the store under its ingest lock, before the manifest switch."""
        if not len(self.active()) and not self.journeys.wants_events():
            return None
        table = journal_table(new_events)
        return Pending(version, table, self.state.write_journal(version, table))

    def after_commit(self, pending: Pending) -> BatchReport | None:
        """Called by the store once the ingest landed.  Never raises: the ingest
        succeeded; a failure is logged and the journal kept for a later catch-up."""
        try:
            with self.state.matching():
                if pending.journal is None:
                    return self.process(pending.table)
                # the ingest landed at pending.version: the journals up to it are due
                return self._drain(pending.version, pending)
        except Exception as exc:  # the ingest landed: report, and let catch_up retry
            self._error(f"trigger matching failed (kept for a catch-up): {exc!r}")
            log.exception("trigger matching failed")
            return None

    def catch_up(self) -> BatchReport:
        """Match the journals an interrupted process left (a worker calls this at start)."""
        with self.state.matching():
            return self._drain(self.store.snapshot().version, None)

    def _drain(self, landed: int, have: Pending | None) -> BatchReport:
        report = BatchReport()
        for journal in self.state.pending_journals(landed):
            if have is not None and journal == have.journal:
                table: pa.Table | None = have.table  # just written: not read back
            else:
                table = self.state.read_journal(journal)
            if table is not None:  # None: matched by another process meanwhile
                report.merge(self.process(table, journal))
        return report

    def process(self, table: pa.Table, journal: Journal | None = None) -> BatchReport:
        """Match the events of one ingest and run what fires (the journal table);
        the firings are committed with the deletion of ``journal``."""
        if table.num_rows == 0:
            if journal is not None:
                self.state.journal_done(journal)
            return BatchReport()
        batch = EventBatch.from_table(table, self.store.snapshot())
        firings = self.state.firings()
        report = fire(self, batch, firings, self.log, live=True)
        if report.profile_updates:
            self.store.ingest_profiles(report.profile_updates)
        if report.list_additions:
            lists = sorted({k for r in report.list_additions for k in r if k != "contact_id"})
            self.store.ingest_profiles(report.list_additions, merge_lists=lists)
        # journeys after the triggers (whose enter_journey actions they take),
        # before the journal goes: a crash in between replays both, harmlessly
        if report.journey_entries or self.journeys.wants_events():
            report.journeys = self.journeys.on_events(batch, report.journey_entries)
        if journal is not None:
            self.state.journal_done(journal, firings)
        else:
            firings.commit()
        return report


@dataclass
class _Report(BatchReport):
    profile_updates: list[dict[str, Any]] = field(default_factory=list)
    list_additions: list[dict[str, Any]] = field(default_factory=list)
    # (journey, contact, time, cause) of the enter_journey actions
    journey_entries: list[tuple[str, str, int, str]] = field(default_factory=list)


def fire(
    engine: TriggerEngine,
    batch: EventBatch,
    firings: FiringState,
    requester: Requester,
    *,
    live: bool,
) -> _Report:
    """Decide and run the firings of ``batch`` (a dry run passes its own
    requester and firing state and writes nothing)."""
    report = _Report(events=len(batch))
    tset = engine.active()
    if not len(tset):
        return report
    matches = tset.match(batch, engine._luts)
    report.matched = len(matches)
    todo = []
    for m in matches:
        ts = batch.ts(m.row)
        why = m.trigger.saved.inactive_why(ts)
        if why == BEFORE_VALID_FROM:
            report.too_old[m.trigger.name] += 1
            if not live:  # a dry run replays history on purpose
                why = None
        if why is not None:
            report.skipped[why] += 1
            continue
        key = batch.event_key(m.row)
        if firings.fired(m.trigger.name, key):
            report.skipped["already fired"] += 1
            continue
        todo.append((m, key))
    holds = condition_holds([m for m, _ in todo], batch)
    run = ActionRun(
        node=engine.store.node,
        batch=batch,
        log=requester,
        template=engine.template,
        policy=engine.policy,
        now_ms=(lambda ts: None) if live else (lambda ts: ts),
    )
    now = clock_ms()
    ready = []
    for (m, key), ok in zip(todo, holds, strict=True):
        if ok:
            ready.append((m, key))
        else:
            report.skipped["if is false"] += 1
    # the deliveries of a chunk share one transaction of the log: one commit for
    # many, while other processes wait at most a chunk for the write lock
    for start in range(0, len(ready), GROUP):
        with requester.grouped():
            for m, key in ready[start : start + GROUP]:
                t, row = m.trigger, m.row
                ts, cid = batch.ts(row), batch.contact_id(row)
                why = _option_blocks(t.trigger, firings, t.name, cid, ts)
                if why:
                    report.skipped[why] += 1
                    continue
                outcomes = run_actions(run, t, row, key, _due(t.trigger, ts))
                f = Firing(t.name, key, cid, ts, t.version, now, json.dumps(outcomes, default=str))
                firings.add(f)
                report.firings.append(f)
                report.fired += 1
    report.deliveries = run.deliveries
    report.profile_updates = run.updates.records()
    report.list_additions = run.updates.additions()
    report.journey_entries = run.journey_entries
    return report


def _option_blocks(t: Trigger, firings: FiringState, name: str, cid: str, ts: int) -> str | None:
    for opt in t.options:
        if isinstance(opt, OncePerContact) and firings.fired_for(name, cid, None, None):
            return "once per contact"
        if isinstance(opt, AtMostOncePer):
            lo = minus(ts, opt.duration, t.tz_name)
            hi = plus(ts, opt.duration, t.tz_name)
            if firings.fired_for(name, cid, lo, hi):
                return "at most once per period"
    return None


def _due(t: Trigger, ts: int) -> int:
    for opt in t.options:
        if isinstance(opt, Delay):
            return plus(ts, opt.duration, t.tz_name)
    return ts


def _compile_template(saved: SavedTemplate) -> CompiledTemplate:
    return compiled(saved.name, saved.version, saved.subject, saved.html, saved.text)
