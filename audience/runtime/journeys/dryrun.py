"""A journey's dry run: its current version replayed over the stored events
(clicks and opens included) of [since, until), writing nothing.

The replay runs the real runtime (entries, waits, checks, DND caps, the
messages rendered) against a scratch delivery log in memory, which starts
with a copy of the real log's deliveries near the span (so the caps count
what was really sent) less the journey's own (the replay makes those again,
as the trigger dry run leaves out its twins).  Events are fed in time order,
an hour of event time at a go, with the clock at the end of each hour;
decisions are by the events' own times, so the hour changes nothing but the
segment-entry checks, which run once per hour of replay.  Deliveries are
decided at their due time.  Nothing of the store, the delivery log or the
journey tables is written (``add_tag`` / ``set`` are only reported).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from audience.runtime.delivery import DeliveryLog
from audience.runtime.delivery import model as m
from audience.runtime.journeys.definitions import LIVE, JourneyDefinitions, SavedJourney
from audience.runtime.journeys.engine import AdvanceReport, JourneyRuntime
from audience.runtime.plans.clock import ManualClock
from audience.runtime.triggers.batch import EventBatch, iso_ms, take_rows

if TYPE_CHECKING:
    from audience.runtime.journeys.service import JourneyService

HOUR = 3_600_000
MARGIN = 62 * 86_400_000  # real deliveries this near the span can touch its caps


@dataclass
class DryRunReport:
    journey: str
    version: int
    since_ms: int
    until_ms: int
    events: int = 0
    entered: int = 0
    not_entered: Counter[str] = field(default_factory=Counter)
    steps: list[dict[str, Any]] = field(default_factory=list)
    sends_per_day: dict[str, dict[str, int]] = field(default_factory=dict)
    suppressed: Counter[str] = field(default_factory=Counter)  # by policy and cap
    branches: list[dict[str, Any]] = field(default_factory=list)  # per contact and check
    contact: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # the contact's step log

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "version": self.version,
            "since": iso_ms(self.since_ms),
            "until": iso_ms(self.until_ms),
            "events": self.events,
            "entered": self.entered,
            "not_entered": dict(sorted(self.not_entered.items())),
            "steps": self.steps,
            "sends_per_day": self.sends_per_day,
            "dnd_suppressed": dict(sorted(self.suppressed.items())),
            "branches": self.branches[:limit],
            "contact": self.contact,
            "history": self.history,
        }

    def lines(self) -> list[str]:
        out = [
            f"journey {self.journey!r} version {self.version}, replayed over "
            f"{iso_ms(self.since_ms)} .. {iso_ms(self.until_ms)}: {self.events} events, "
            f"{self.entered} entered"
        ]
        out += [f"  not entered ({why}): {n}" for why, n in sorted(self.not_entered.items())]
        out.append("steps:")
        for s in self.steps:
            label = f" {s['label']!r}" if s["label"] else ""
            out.append(
                f"  {s['step']:<10} {s['kind']}{label}: reached {s['entered']}, "
                f"waiting {s['waiting']}, ended {s['done']}"
            )
        if self.sends_per_day:
            out.append("sends per day:")
            for day, by in sorted(self.sends_per_day.items()):
                out.append(f"  {day}: " + ", ".join(f"{k} {n}" for k, n in sorted(by.items())))
        for cap, n in sorted(self.suppressed.items()):
            out.append(f"held by DND {cap}: {n}")
        if self.contact is not None:
            out.append(f"contact {self.contact}:")
            for b in self.branches:
                out.append(f"  {b['at']} {b['check']!r}: {b['branch']} ({b['why']})")
            if not self.branches:
                out.append("  took no branch in the span")
        return out


def dry_run(
    svc: JourneyService,
    saved: SavedJourney,
    since_ms: int,
    until_ms: int,
    contact: str | None = None,
) -> DryRunReport:
    store, real = svc.store, svc.runtime
    compiled = real.compiled(saved)
    scratch_log = DeliveryLog.open(None)
    try:
        _copy_deliveries(real.log, scratch_log, saved, since_ms, until_ms)
        defs = JourneyDefinitions(scratch_log)
        with defs.transaction() as conn:
            conn.execute(
                "insert into journeys (id, node, name, state, version, live_ms, created_ms, "
                "updated_ms) values (?, ?, ?, ?, ?, ?, ?, ?)",
                [saved.id, saved.node, saved.name, LIVE, saved.version, since_ms, 0, 0],
            )
            conn.execute(
                "insert into journey_versions (journey_id, version, text, steps, created_ms) "
                "values (?, ?, ?, '[]', 0)",
                [saved.id, saved.version, saved.text],
            )
        clock = ManualClock(since_ms)
        rt = JourneyRuntime(store, clock, scratch_log, defs)
        rt.replay = True
        rt.catalog.remember(saved.id, saved.version, compiled.journey)
        report = DryRunReport(saved.name, saved.version, since_ms, until_ms, contact=contact)
        total = AdvanceReport(since_ms)
        total.merge(rt.advance(since_ms))  # a segment entry's baseline
        batch_all = _events(store, since_ms, until_ms)
        t = since_ms
        while t < until_ms:
            end = min(t + HOUR, until_ms)
            clock.ms = end - 1
            part = None if batch_all is None else batch_all(t, end)
            if part is not None:
                report.events += len(part)
                total.merge(rt.on_events(part))
            total.merge(rt.advance(end - 1))
            t = end
        report.entered = total.entered
        report.not_entered = total.skipped
        _fill(report, rt, defs, scratch_log, saved, contact)
        return report
    finally:
        scratch_log.close()


def _copy_deliveries(
    real: DeliveryLog, scratch: DeliveryLog, saved: SavedJourney, since: int, until: int
) -> None:
    cols = (
        "key, node, contact_id, email, email_norm, channel, kind, payload, status, policy, "
        "cap, requested_ms, due_ms, test, source, created_ms"
    )
    with real._lock:
        rows = real._conn.execute(
            f"select {cols} from deliveries where due_ms > ? and due_ms < ? and test = 0 "
            f"and status in {m.COUNTED_SQL} and source != ? and payload is not null",
            [since - MARGIN, until + MARGIN, f"journey:{saved.name}"],
        ).fetchall()
    with scratch.transaction() as conn:
        conn.executemany(
            f"insert into deliveries ({cols}) values ({', '.join('?' * 16)})",
            rows,
        )


def _events(store: Any, since: int, until: int) -> Any:
    """A function (a, b) -> the stored events with a <= ts < b as an EventBatch (None: none)."""
    snap = store.snapshot()
    parts = [p for p in snap.partitions if len(p) and p.max_ts >= since and p.min_ts < until]
    if not parts:
        return None

    def between(a: int, b: int) -> EventBatch | None:
        taken = []
        for part in parts:
            i = int(np.searchsorted(part.ts, a, "left"))
            j = int(np.searchsorted(part.ts, b, "left"))
            if i < j:
                taken.append(take_rows(part, np.arange(i, j)))
        return EventBatch.from_partitions(taken, snap) if taken else None

    return between


def _fill(
    report: DryRunReport,
    rt: JourneyRuntime,
    defs: JourneyDefinitions,
    log: DeliveryLog,
    saved: SavedJourney,
    contact: str | None,
) -> None:
    from audience.runtime.journeys.service import step_counts

    report.steps = step_counts(defs, rt.compiled(saved), saved.id)
    source = f"journey:{saved.name}"
    for d in log.list():
        if d.source != source:
            continue
        day = iso_ms(d.due_ms)[:10]
        by = report.sends_per_day.setdefault(day, {})
        by[d.status] = by.get(d.status, 0) + 1
        if d.status == m.SUPPRESSED:
            report.suppressed[f"{d.policy}: {d.cap}"] += 1
    params: list[Any] = [saved.id]
    sql = (
        "select r.contact_id, r.entry, s.step, s.kind, s.at_ms, s.outcome from journey_steps s "
        "join journey_runs r on r.id = s.run_id where r.journey_id = ? "
        "and s.kind in ('yes', 'no')"
    )
    if contact is not None:
        sql += " and r.contact_id = ?"
        params.append(contact)
    c = rt.compiled(saved)
    for cid, entry, step, kind, at, outcome in defs.read(
        sql + " order by r.contact_id, s.at_ms", params
    ):
        report.branches.append(
            {
                "contact_id": cid,
                "entry": entry,
                "check": getattr(c.steps.get(step), "label", step),
                "step": step,
                "branch": kind,
                "at": iso_ms(at),
                "why": json.loads(outcome).get("why", ""),
            }
        )
    if contact is not None:
        runs = defs.runs_of(saved.id, contact)
        report.history = defs.step_log([r.id for r in runs])
