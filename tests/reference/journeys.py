"""The reference interpreter of journeys (SPEC 6.3), in plain Python, for ONE
journey version.  Slow and literal on purpose; the runtime's stateful tests
hold the engine to it.

    ref = RefJourney(journey, schema=schema, profiles=profiles)
    ref.event("angela", {"id": "e1", "type": "form_compiled", "ts": t0, "form_name": "addUser"})
    ref.advance(t0 + 3 * DAY_MS)
    ref.sends      # [("0", "angela", 1), ...]: (step id, contact, entry seq)
    ref.position("angela")

Times are epoch milliseconds (UTC).  Event dicts are flat like the store's
records: ``type``, ``ts`` (ms), optional ``id`` and ``context``, and the
properties.

The rules it applies (the engine must agree):

Entry
- ``enter(contact, at_ms)`` is one entry attempt (``enter_journey``, a segment
  join, a matching event).  It is refused before the start (``start at`` in its
  zone, and never before ``live_from_ms``).  ``once per contact``: refused if
  the contact ever entered.  ``again after D``: refused unless ``at_ms`` is at
  least D after the contact's previous entry; an earlier run still inside goes
  on by itself (runs are per entry, numbered 1, 2, ... per contact).
- ``enter on E where P if C``: an event of type E (``where P`` on the event,
  ``if C`` evaluated for the contact at the event's time over its events so
  far, the event included) enters at the event's time.  An event id seen
  before is ignored entirely, as the store drops it.
- ``enter segment "S"``: ``membership(members, at_ms)``; the first call is the
  baseline (members then never enter for it), each later one enters the
  contacts in ``members`` that were not in the previous call.

Steps (each run keeps a logical time: when it reached its current step)
- ``action``: runs at once; a ``send`` is recorded in ``sends``, every action
  in ``actions``, as (step id, contact, entry seq).  DND and suppression are
  the delivery log's business, not the journey's: a send here is a request.
- ``wait D``: the run sleeps until its logical time + D (days are 24 hours,
  months calendar months in the start's zone, UTC for ``start now``) and goes
  on, at that instant, only when ``advance(now_ms)`` reaches it.
- ``check ... within D``: the deadline is the instant the run reached the
  check + D.  ``yes`` at the first instant T <= deadline at which COND holds,
  where T is the run's arrival at the check or the time of one of the
  contact's events (by ``ts``, whatever order they arrived in), considering
  the events known when the decision is made:
  * ``clicked "A" [link "x"]``: an ``email_clicked`` event whose
    ``delivery_key`` is the key of this run's action A
    (``delivery_key(step, contact, entry)``), not ``bot``, with ``link_text``
    or ``link`` equal to x when given.  Such a click before the run reached the
    check counts (it decides at the arrival); ``opened`` likewise with
    ``email_opened``;
  * a section 3 condition: evaluated (tests/reference/evaluator.py) at T over
    the contact's events from the arrival at the check up to T and the
    contact's profile; so ``not did x`` holds at the arrival.
  An event decides the check as soon as it is fed (``event``), even if its
  ``ts`` is long before the arrival time of the feed.  When ``advance(now)``
  reaches the deadline with no such event known, the run takes ``no`` at the
  deadline and never re-decides: a click with ``ts <= deadline`` fed after
  that tick is ignored; one fed before it counts.  A click with ``ts >
  deadline`` never counts.
- ``end``, or a block running out of steps: the run is done.  Steps after a
  check in the same block are never reached (the checker reports them): the
  run ends with its branch.
- ``advance(now_ms)`` wakes due runs one at a time in order of their due
  instant (then contact, then entry), each going on from that instant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audience.dsl.ast import Cond, Did
from audience.dsl.ast_journeys import (
    ActionStep,
    CheckStep,
    Clicked,
    EndStep,
    EnterOn,
    EnterSegment,
    Journey,
    Opened,
    StartAt,
    Step,
    WaitStep,
    step_paths,
)
from audience.schema import Schema

from .evaluator import Event, evaluate
from .timewin import plus, wall_to_instant

_UTC = dt.UTC
_BUILT_IN = ("id", "type", "ts", "context", "contact_id")


def ms_to_dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, _UTC)


def dt_to_ms(t: dt.datetime) -> int:
    return round(t.timestamp() * 1000)


@dataclass(frozen=True)
class RunPosition:
    """Where one run is: ``state`` is ``waiting`` (a wait), ``checking`` (a
    check, ``wake_at_ms`` its deadline) or ``done``; ``step`` the current step
    id (None when done); ``path`` every step id it went through, in order."""

    entry: int
    state: str
    step: str | None
    wake_at_ms: int | None
    path: tuple[str, ...]
    entered_ms: int


@dataclass
class _Run:
    contact: str
    entry: int
    entered_ms: int
    block: tuple[Step, ...] = ()
    prefix: str = ""
    index: int = 0  # the current step: block[index]
    at_ms: int = 0  # when the run reached the current step
    wake_ms: int | None = None
    done: bool = False
    path: list[str] = field(default_factory=list)

    @property
    def step_id(self) -> str:
        return f"{self.prefix}{self.index}"


class RefJourney:
    """One journey version and its contacts' runs (see the module's rules)."""

    def __init__(
        self,
        journey: Journey,
        *,
        schema: Schema | None = None,
        profiles: Mapping[str, Mapping[str, Any]] | None = None,
        journey_id: int | str = 1,
        version: int = 1,
        live_from_ms: int = 0,
    ) -> None:
        self.journey = journey
        self.schema = schema
        self.profiles = profiles if profiles is not None else {}
        self.journey_id = journey_id
        self.version = version
        self.tz = journey.start.tz_name if isinstance(journey.start, StartAt) else "UTC"
        start = journey.start
        start_ms = dt_to_ms(wall_to_instant(start.at, self.tz)) if isinstance(start, StartAt) else 0
        self.start_ms = max(start_ms, live_from_ms)
        self.steps = dict(step_paths(journey.steps))
        self.label_ids = {
            s.label: sid for sid, s in self.steps.items() if isinstance(s, ActionStep | CheckStep)
        }
        self.sends: list[tuple[str, str, int]] = []
        self.actions: list[tuple[str, str, int]] = []
        self.now_ms: int | None = None  # the last advance
        self._runs: dict[str, list[_Run]] = {}
        self._events: dict[str, list[tuple[Event, dict[str, Any]]]] = {}
        self._seen_ids: set[str] = set()
        self._members: set[str] | None = None

    # ------------------------------------------------------------------ inputs

    def delivery_key(self, step_id: str, contact: str, entry: int) -> str:
        """The delivery log's key of a journey send (the contract's format)."""
        return f"journey:{self.journey_id}:v{self.version}:{step_id}:{contact}:{entry}"

    def enter(self, contact: str, at_ms: int) -> int | None:
        """One entry attempt; the new run's entry seq, or None when refused."""
        if at_ms < self.start_ms:
            return None
        runs = self._runs.setdefault(contact, [])
        if runs:
            again = self.journey.reentry.again_after
            if again is None:
                return None
            previous = ms_to_dt(runs[-1].entered_ms)
            if at_ms < dt_to_ms(plus(previous, again, self.tz)):
                return None
        run = _Run(contact, len(runs) + 1, at_ms, self.journey.steps, "", 0, at_ms)
        runs.append(run)
        self._go(run)
        return run.entry

    def event(self, contact: str, event: Mapping[str, Any]) -> None:
        """An ingested event of ``contact``: may enter it and decide its checks."""
        eid = event.get("id")
        if eid is not None:
            if eid in self._seen_ids:
                return
            self._seen_ids.add(eid)
        record = _record(contact, event)
        self._events.setdefault(contact, []).append((record, dict(event)))
        for run in list(self._runs.get(contact, [])):
            if not run.done and run.wake_ms is not None and self._in_check(run):
                self._try_decide(run)
        entry = self.journey.entry
        if isinstance(entry, EnterOn) and self._enters(contact, record, entry):
            self.enter(contact, int(event["ts"]))

    def membership(self, members: Iterable[str], at_ms: int) -> list[str]:
        """A snapshot of the entry segment's members; enters (and returns) the joiners."""
        now = set(members)
        before, self._members = self._members, now
        if before is None or not isinstance(self.journey.entry, EnterSegment):
            return []
        joined = sorted(now - before)
        for contact in joined:
            self.enter(contact, at_ms)
        return joined

    def advance(self, now_ms: int) -> None:
        """Time reaches ``now_ms``: due waits wake, due checks take ``no``."""
        self.now_ms = now_ms if self.now_ms is None else max(self.now_ms, now_ms)
        while True:
            due = [
                r
                for runs in self._runs.values()
                for r in runs
                if not r.done and r.wake_ms is not None and r.wake_ms <= now_ms
            ]
            if not due:
                return
            run = min(due, key=lambda r: (r.wake_ms, r.contact, r.entry))
            step = run.block[run.index]
            wake = run.wake_ms
            assert wake is not None
            run.wake_ms = None
            if isinstance(step, CheckStep):
                self._branch(run, step, "no", wake)
            else:
                run.index += 1
                run.at_ms = wake
                self._go(run)

    # ------------------------------------------------------------------ outputs

    def position(self, contact: str) -> list[RunPosition]:
        """The contact's runs, by entry."""
        out = []
        for r in self._runs.get(contact, []):
            if r.done:
                out.append(RunPosition(r.entry, "done", None, None, tuple(r.path), r.entered_ms))
            else:
                state = "checking" if self._in_check(r) else "waiting"
                pos = RunPosition(r.entry, state, r.step_id, r.wake_ms, tuple(r.path), r.entered_ms)
                out.append(pos)
        return out

    # ------------------------------------------------------------------ running

    def _in_check(self, run: _Run) -> bool:
        return isinstance(run.block[run.index], CheckStep)

    def _go(self, run: _Run) -> None:
        """Run steps from the current one until the run waits, checks or ends."""
        while True:
            if run.index >= len(run.block):
                run.done = True
                return
            step = run.block[run.index]
            sid = run.step_id
            run.path.append(sid)
            if isinstance(step, ActionStep):
                key = (sid, run.contact, run.entry)
                self.actions.append(key)
                if step.send is not None:
                    self.sends.append(key)
                run.index += 1
            elif isinstance(step, WaitStep):
                run.wake_ms = dt_to_ms(plus(ms_to_dt(run.at_ms), step.duration, self.tz))
                return
            elif isinstance(step, CheckStep):
                run.wake_ms = dt_to_ms(plus(ms_to_dt(run.at_ms), step.within, self.tz))
                self._try_decide(run)
                return
            else:
                assert isinstance(step, EndStep)
                run.done = True
                return

    def _branch(self, run: _Run, check: CheckStep, which: str, at_ms: int) -> None:
        sid = run.step_id
        run.block = check.yes if which == "yes" else check.no
        run.prefix = f"{sid}.{which}."
        run.index = 0
        run.at_ms = at_ms
        run.wake_ms = None
        self._go(run)

    def _try_decide(self, run: _Run) -> None:
        """``yes`` if COND holds at some instant between arrival and deadline."""
        check = run.block[run.index]
        assert isinstance(check, CheckStep) and run.wake_ms is not None
        arrival, deadline = run.at_ms, run.wake_ms
        when = self._first_instant(run, check, arrival, deadline)
        if when is not None:
            self._branch(run, check, "yes", when)

    def _first_instant(
        self, run: _Run, check: CheckStep, arrival: int, deadline: int
    ) -> int | None:
        known = self._events.get(run.contact, [])
        cond = check.cond
        if isinstance(cond, Clicked | Opened):
            kind = "email_clicked" if isinstance(cond, Clicked) else "email_opened"
            key = self.delivery_key(self.label_ids[cond.action], run.contact, run.entry)
            times = [
                max(arrival, int(raw["ts"]))
                for _, raw in known
                if raw.get("type") == kind
                and raw.get("delivery_key") == key
                and not raw.get("bot")
                and int(raw["ts"]) <= deadline
                and (
                    not isinstance(cond, Clicked)
                    or cond.link is None
                    or cond.link in (raw.get("link_text"), raw.get("link"))
                )
            ]
            return min(times, default=None)
        after = [(e, int(raw["ts"])) for e, raw in known if arrival <= int(raw["ts"]) <= deadline]
        for t in sorted({arrival, *(ts for _, ts in after)}):
            events = [e for e, ts in after if ts <= t]
            if self._holds(cond, run.contact, events, t):
                return t
        return None

    # ------------------------------------------------------------------ conditions

    def _holds(self, cond: Cond, contact: str, events: list[Event], t_ms: int) -> bool:
        if self.schema is None:
            raise ValueError("a journey with conditions needs a schema")
        # the contact is always in the universe: `not did x` holds for one without events
        profile = dict(self.profiles.get(contact) or {})
        kept = [e for e in events if e.type in self.schema.events]
        found = evaluate(
            cond,
            events=kept,
            profiles={contact: profile},
            schema=self.schema,
            now=ms_to_dt(t_ms),
            timezone=self.tz,
        )
        return contact in found

    def _enters(self, contact: str, record: Event, entry: EnterOn) -> bool:
        if entry.events.types is not None and record.type not in entry.events.types:
            return False
        t = dt_to_ms(record.ts)
        if entry.where is not None and not self._holds(
            Did(entry.events, entry.where), contact, [record], t
        ):
            return False
        if entry.condition is None:
            return True
        so_far = [e for e, raw in self._events.get(contact, []) if int(raw["ts"]) <= t]
        return self._holds(entry.condition, contact, so_far, t)


def _record(contact: str, event: Mapping[str, Any]) -> Event:
    props = {k: v for k, v in event.items() if k not in _BUILT_IN}
    return Event(
        event.get("id"),
        contact,
        str(event["type"]),
        ms_to_dt(int(event["ts"])),
        event.get("context"),
        props,
    )
