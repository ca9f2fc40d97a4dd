"""The reference evaluator of segment conditions (SPEC section 3), in plain Python.

Slow and literal on purpose: every construct loops over the contacts of the
universe and their events and applies the SPEC's sentence for it.  The
differential tests hold the numba engine to it.

Data model:
- ``Event``: one event; ``ts`` aware, UTC, millisecond precision; ``props``
  maps dotted property names to values (a missing key or ``None``: missing).
- profiles: ``contact_id -> {prop: value}``; a contact in the mapping has a
  profile even when all its values are missing.  Dates are ``datetime.date``,
  datetimes aware ``datetime``, ``list<string>`` Python lists (empty: not set).
- ``dedup(events)``: a repeated event id is the same event; the first
  occurrence in input order is kept, whatever its contact, type or time.
  Events without an id are never duplicates.  ``evaluate`` applies it first,
  then drops events after ``now``.
- the universe: contacts with a profile, and contacts with an event at or
  before ``now`` (after dedup).

Choices made where SPEC section 3 is silent (the lead pins them in the SPEC):
 1. local wall times that DST makes ambiguous or nonexistent are read with
    ``fold=0`` (first occurrence; a skipped time keeps the pre-jump offset);
    month shifts keep the local wall time, clamp the day, then read it so;
 2. ``then``: the E2 event need not be in WINDOW, only strictly after E1, at
    most D after it (``e2 <= e1 + D``, months in the definition's zone) and at
    or before now;
 3. ``then not``: E1 in WINDOW with ``e1 <= now - D``, and no E2 with
    ``e1 < e2 <= e1 + D``;
 4. ``last``/``first`` look at all the contact's matching events up to now
    (there is no WINDOW; RECENCY bounds only the newest/oldest one);
 5. RECENCY ``since T`` is ``ts >= T``; ``between`` as the WINDOW ``between``;
 6. a ``date`` property value is the instant of its local midnight in the
    definition's time zone; see ``predicates`` for the operator choices
    (date literal upper bound of ``between``, ``since``/``less than D ago``
    on properties with no upper bound, lists: some element);
 7. ``count_distinct`` over a ``list<string>`` property counts distinct
    elements; over ``ts`` distinct instants;
 8. an aggregate's field may be ``profile.x`` (the contact's value per event);
    in event predicates ``id`` and ``contact_id`` are readable too;
 9. ``in segment`` evaluates the saved segment with its own time zone and the
    same ``now``; an unknown name or a cycle raises ``SegmentError``;
10. ``sum``/``avg`` add the present values in ``ts`` order (ties: input order)
    as float64; the generators only produce values whose sums are exact, so
    the order does not matter for the differential tests;
11. an empty string is a present value (``is set``); only ``None`` and the
    empty list are missing;
12. a date literal is read in its own ``DateLit.tz`` (the parser gives it the
    definition's zone); calendar windows and month shifts use ``timezone``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from audience.dsl.ast import (
    Aggregate,
    And,
    Cond,
    Count,
    Did,
    EventSel,
    Field,
    InSegment,
    LastFirst,
    Not,
    Or,
    Pred,
    ProfileCond,
    Rule,
    Segment,
    Sequence,
)
from audience.schema import Schema

from .predicates import comparison_holds, holds, literal, normalize
from .timewin import minus, plus, recency_interval, utc, window_interval


@dataclass(frozen=True)
class Event:
    id: str | None
    contact_id: str
    type: str
    ts: dt.datetime
    context: str | None = None
    props: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """A built-in field or a property; ``None`` when missing."""
        if name in ("id", "contact_id", "type", "ts", "context"):
            return getattr(self, name)
        return self.props.get(name)


class SegmentError(ValueError):
    """``in segment`` names an unknown segment or closes a cycle."""


def dedup(events: Iterable[Event]) -> list[Event]:
    """Keep the first occurrence (input order) of each event id."""
    seen: set[str] = set()
    out: list[Event] = []
    for e in events:
        if e.id is not None:
            if e.id in seen:
                continue
            seen.add(e.id)
        out.append(e)
    return out


def universe(events: Iterable[Event], profiles: Mapping[str, Any], now: dt.datetime) -> set[str]:
    """SPEC 3.2: contacts with a profile or an event at or before ``now``."""
    now = utc(now)
    return set(profiles) | {e.contact_id for e in dedup(events) if utc(e.ts) <= now}


@dataclass
class _Ctx:
    by_contact: dict[str, list[Event]]  # events at or before now, ts order
    profiles: Mapping[str, Mapping[str, Any]]
    universe: set[str]
    now: dt.datetime
    tz: str
    segments: Mapping[str, Segment]
    stack: tuple[str, ...]

    def events_of(self, contact: str) -> list[Event]:
        return self.by_contact.get(contact, [])

    def profile_value(self, contact: str, f: Field) -> Any:
        return self.profiles.get(contact, {}).get(f.name)


def evaluate(
    cond: Cond,
    *,
    events: list[Event],
    profiles: dict[str, dict[str, Any]],
    schema: Schema,
    now: dt.datetime,
    timezone: str = "UTC",
    segments: Mapping[str, Segment] | None = None,
) -> set[str]:
    """The contact ids for which ``cond`` is true at ``now`` (SPEC 3)."""
    return _evaluate(cond, events, profiles, schema, utc(now), timezone, segments or {}, ())


def evaluate_segment(
    segment: Segment,
    *,
    events: list[Event],
    profiles: dict[str, dict[str, Any]],
    schema: Schema,
    now: dt.datetime,
    segments: Mapping[str, Segment] | None = None,
) -> set[str]:
    """``evaluate`` of a segment's condition in its own time zone (and with its
    name on the cycle-detection stack)."""
    saved = segments or {}
    args = (segment.cond, events, profiles, schema, utc(now), segment.tz_name, saved)
    return _evaluate(*args, (segment.name,))


def _evaluate(
    cond: Cond,
    events: list[Event],
    profiles: Mapping[str, Mapping[str, Any]],
    schema: Schema,
    now: dt.datetime,
    timezone: str,
    segments: Mapping[str, Segment],
    stack: tuple[str, ...],
) -> set[str]:
    kept = [e for e in dedup(events) if utc(e.ts) <= now]
    for e in kept:
        if e.type not in schema.events:
            raise ValueError(f"event type {e.type!r} is not in the schema")
    by_contact: dict[str, list[Event]] = {}
    # sorted() is stable: equal timestamps keep their input order
    for e in sorted(kept, key=lambda e: utc(e.ts)):
        by_contact.setdefault(e.contact_id, []).append(e)
    ctx = _Ctx(
        by_contact=by_contact,
        profiles=profiles,
        universe=set(profiles) | set(by_contact),
        now=now,
        tz=timezone,
        segments=segments,
        stack=stack,
    )
    return _eval(cond, ctx)


def _eval(cond: Cond, ctx: _Ctx) -> set[str]:
    if isinstance(cond, And):
        out = set(ctx.universe)
        for c in cond.operands:
            out &= _eval(c, ctx)
        return out
    if isinstance(cond, Or):
        out = set()
        for c in cond.operands:
            out |= _eval(c, ctx)
        return out
    if isinstance(cond, Not):
        return ctx.universe - _eval(cond.operand, ctx)
    if isinstance(cond, Rule):
        return _eval(cond.cond, ctx)
    if isinstance(cond, ProfileCond):
        return {
            c
            for c in ctx.universe
            if comparison_holds(cond.pred, ctx.profile_value(c, cond.pred.field), ctx.now, ctx.tz)
        }
    if isinstance(cond, Did):
        return {c for c in ctx.universe if _count_ok(cond.count, len(_matching(cond, c, ctx)))}
    if isinstance(cond, Aggregate):
        return {c for c in ctx.universe if _aggregate_ok(cond, c, ctx)}
    if isinstance(cond, LastFirst):
        return {c for c in ctx.universe if _last_first_ok(cond, c, ctx)}
    if isinstance(cond, Sequence):
        return {c for c in ctx.universe if _sequence_ok(cond, c, ctx)}
    if isinstance(cond, InSegment):
        return _in_segment(cond.name, ctx)
    raise TypeError(f"not a condition: {cond!r}")


# --------------------------------------------------------------------------- events


def _selected(sel: EventSel, e: Event) -> bool:
    return sel.types is None or e.type in sel.types


def _event_holds(pred: Pred | None, e: Event, ctx: _Ctx) -> bool:
    if pred is None:
        return True

    def resolve(f: Field) -> Any:
        if f.scope == "profile":
            return ctx.profile_value(e.contact_id, f)
        return e.get(f.name)

    return holds(pred, resolve, ctx.now, ctx.tz)


def _filtered(
    contact: str, sel: EventSel, where: Pred | None, ctx: _Ctx, window: Any = None
) -> list[Event]:
    """The contact's events (at or before now) of ``sel`` satisfying ``where``
    and inside ``window`` (an ``Interval``; None: all up to now)."""
    return [
        e
        for e in ctx.events_of(contact)
        if _selected(sel, e)
        and (window is None or utc(e.ts) in window)
        and _event_holds(where, e, ctx)
    ]


def _matching(cond: Did | Aggregate, contact: str, ctx: _Ctx) -> list[Event]:
    window = window_interval(cond.window, ctx.now, ctx.tz)
    return _filtered(contact, cond.events, cond.where, ctx, window)


def _count_ok(count: Count | None, n: int) -> bool:
    if count is None:
        return n >= 1
    if count.op == "at_least":
        return n >= count.n
    if count.op == "at_most":
        return n <= count.n
    if count.op == "exactly":
        return n == count.n
    if count.op == "between":
        assert count.high is not None
        return count.n <= n <= count.high
    raise ValueError(f"unknown count {count.op!r}")


def _aggregate_value(cond: Aggregate, contact: str, ctx: _Ctx) -> float | int | None:
    present: list[Any] = []
    for e in _matching(cond, contact, ctx):
        if cond.field.scope == "profile":
            raw = ctx.profile_value(contact, cond.field)
        else:
            raw = e.get(cond.field.name)
        value = normalize(raw, ctx.tz)
        if value is not None:
            present.append(value)
    if cond.func == "count_distinct":
        distinct: set[Any] = set()
        for v in present:
            distinct.update(v if isinstance(v, list) else [v])
        return len(distinct)
    for v in present:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(f"{cond.func} over a non-numeric value {v!r}")
    if cond.func == "sum":
        total = 0.0
        for v in present:
            total += float(v)
        return total
    if not present:
        return None  # avg/min/max over no events: no value
    if cond.func == "avg":
        total = 0.0
        for v in present:
            total += float(v)
        return total / len(present)
    if cond.func == "min":
        return min(present)
    if cond.func == "max":
        return max(present)
    raise ValueError(f"unknown aggregate {cond.func!r}")


def _aggregate_ok(cond: Aggregate, contact: str, ctx: _Ctx) -> bool:
    value = _aggregate_value(cond, contact, ctx)
    if value is None:
        return False
    v = literal(cond.value)
    ops = {
        "=": value == v,
        "!=": value != v,
        "<": value < v,
        "<=": value <= v,
        ">": value > v,
        ">=": value >= v,
    }
    return bool(ops[cond.op])


def _last_first_ok(cond: LastFirst, contact: str, ctx: _Ctx) -> bool:
    found = _filtered(contact, cond.events, cond.where, ctx)
    if not found:
        return False
    chosen = found[-1] if cond.which == "last" else found[0]
    return utc(chosen.ts) in recency_interval(cond.recency, ctx.now, ctx.tz)


def _sequence_ok(cond: Sequence, contact: str, ctx: _Ctx) -> bool:
    window = window_interval(cond.window, ctx.now, ctx.tz)
    firsts = _filtered(contact, cond.first, cond.first_where, ctx, window)
    seconds = _filtered(contact, cond.second, cond.second_where, ctx)
    if cond.then_not:
        old_enough = minus(ctx.now, cond.within, ctx.tz)
        firsts = [e for e in firsts if utc(e.ts) <= old_enough]
    for e1 in firsts:
        t1 = utc(e1.ts)
        limit = plus(t1, cond.within, ctx.tz)
        followed = any(t1 < utc(e2.ts) <= limit for e2 in seconds)
        if followed != cond.then_not:
            return True
    return False


def _in_segment(name: str, ctx: _Ctx) -> set[str]:
    if name in ctx.stack:
        raise SegmentError(f"segment cycle: {' -> '.join((*ctx.stack, name))}")
    saved = ctx.segments.get(name)
    if saved is None:
        raise SegmentError(f"unknown segment {name!r}")
    inner = _Ctx(
        by_contact=ctx.by_contact,
        profiles=ctx.profiles,
        universe=ctx.universe,
        now=ctx.now,
        tz=saved.tz_name,
        segments=ctx.segments,
        stack=(*ctx.stack, name),
    )
    return _eval(saved.cond, inner)
