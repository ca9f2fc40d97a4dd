"""Random stores: events and profiles as Python records and as Arrow tables.

``stores(schema)`` is a hypothesis strategy; ``random_store(seed, schema)`` the
same generator driven by ``random.Random`` (for benchmarks and soak runs).
A store holds the edge cases the SPEC cares about: an empty store, contacts
with a profile and no events, contacts with events and no profile, contacts
whose only events are after ``now``, events exactly on window bounds (``now -
D`` in both zones, local midnights, ``e1 + D`` of an earlier event) and one
millisecond either side, events after ``now``, missing properties and
contexts, empty lists, repeated event ids (possibly with another contact or
time: the first occurrence is the event), DST days and month ends.

``StoreData.to_arrow()`` gives the tables of the engine contract, with
duplicates NOT removed: the store under test must drop them itself.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa
from hypothesis import strategies as st

from audience.dsl.ast import Cond, Segment
from audience.schema import Schema

from .evaluator import Event, evaluate, evaluate_segment
from .timewin import plus
from .vocab import (
    CONTEXT_VALUES,
    DURATIONS,
    FLOATS,
    INTS,
    LIST_ELEMENTS,
    NOWS,
    TEST_SCHEMA,
    TIMEZONES,
    boundary_instants,
    literal_dates,
    literal_instants,
    strings_for,
)

T = TypeVar("T")
UTC = dt.UTC
MS = dt.timedelta(milliseconds=1)

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "datetime": pa.timestamp("ms", tz="UTC"),
    "list<string>": pa.list_(pa.string()),
}


@dataclass
class StoreData:
    schema: Schema
    events: list[Event]  # input order, duplicates included
    profiles: dict[str, dict[str, Any]]
    now: dt.datetime

    def evaluate(
        self,
        cond: Cond,
        timezone: str = "UTC",
        segments: dict[str, Segment] | None = None,
    ) -> set[str]:
        return evaluate(
            cond,
            events=self.events,
            profiles=self.profiles,
            schema=self.schema,
            now=self.now,
            timezone=timezone,
            segments=segments,
        )

    def evaluate_segment(
        self, segment: Segment, segments: dict[str, Segment] | None = None
    ) -> set[str]:
        return evaluate_segment(
            segment,
            events=self.events,
            profiles=self.profiles,
            schema=self.schema,
            now=self.now,
            segments=segments,
        )

    def to_arrow(self) -> tuple[pa.Table, pa.Table]:
        """(events, profiles) per the engine contract; duplicates kept."""
        return events_table(self.events, self.schema), profiles_table(self.profiles, self.schema)


def event_columns(schema: Schema) -> dict[str, str]:
    """The union of the event properties over the types, name -> type."""
    out: dict[str, str] = {}
    for etype, props in schema.events.items():
        for name, ftype in props.items():
            if out.setdefault(name, ftype) != ftype:
                raise ValueError(f"event property {name!r} has two types ({etype})")
    return dict(sorted(out.items()))


def events_table(events: Sequence[Event], schema: Schema) -> pa.Table:
    columns = event_columns(schema)
    fields = [
        pa.field("id", pa.string()),
        pa.field("contact_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("context", pa.string()),
    ] + [pa.field(name, ARROW_TYPES[ftype]) for name, ftype in columns.items()]
    data: dict[str, list[Any]] = {
        "id": [e.id for e in events],
        "contact_id": [e.contact_id for e in events],
        "type": [e.type for e in events],
        "ts": [e.ts for e in events],
        "context": [e.context for e in events],
    }
    for name in columns:
        data[name] = [e.props.get(name) for e in events]
    return pa.Table.from_pydict(data, schema=pa.schema(fields))


def profiles_table(profiles: dict[str, dict[str, Any]], schema: Schema) -> pa.Table:
    fields = [pa.field("contact_id", pa.string(), nullable=False)]
    fields += [pa.field(name, ARROW_TYPES[ftype]) for name, ftype in schema.profile.items()]
    data: dict[str, list[Any]] = {"contact_id": list(profiles)}
    for name in schema.profile:
        data[name] = [p.get(name) for p in profiles.values()]
    return pa.Table.from_pydict(data, schema=pa.schema(fields))


# --------------------------------------------------------------------------- sources


class _Source:
    """The random choices a generator makes (hypothesis draws or ``Random``)."""

    def __init__(self, integer: Callable[[int, int], int]) -> None:
        self.integer = integer

    def choice(self, seq: Sequence[T]) -> T:
        return seq[self.integer(0, len(seq) - 1)]

    def percent(self, p: int) -> bool:
        """True with probability ``p``% (shrinks to True)."""
        return self.integer(0, 99) < p


def _hypothesis_source(draw: st.DrawFn) -> _Source:
    return _Source(lambda lo, hi: draw(st.integers(lo, hi)))


# --------------------------------------------------------------------------- values


def value_for(src: _Source, name: str, ftype: str, now: dt.datetime) -> Any:
    """A present value of ``ftype`` for property ``name``."""
    if ftype == "string":
        return src.choice(strings_for(name))
    if ftype == "int":
        return src.choice(INTS)
    if ftype == "float":
        return src.choice(FLOATS)
    if ftype == "bool":
        return src.percent(50)
    if ftype == "date":
        return src.choice(literal_dates())
    if ftype == "datetime":
        return _instant(src, now, [])
    if ftype == "list<string>":
        return [src.choice(LIST_ELEMENTS) for _ in range(src.integer(1, 3))]
    raise ValueError(f"unknown type {ftype!r}")


def _missing(src: _Source, ftype: str) -> Any:
    """A missing value: None, or an empty list for lists (also not set)."""
    return [] if ftype == "list<string>" and src.percent(50) else None


def _instant(src: _Source, now: dt.datetime, earlier: list[dt.datetime]) -> dt.datetime:
    """A millisecond instant, often on a bound (or 1 ms either side)."""
    mode = src.integer(0, 4)
    if mode == 0:
        base = src.choice(boundary_instants(now))
    elif mode == 1:
        base = src.choice(literal_instants())
    elif mode == 2 and earlier:
        base = plus(src.choice(earlier), src.choice(DURATIONS), src.choice(TIMEZONES))
    else:
        span_ms = 130 * 86400 * 1000
        return now - dt.timedelta(milliseconds=src.integer(-2 * 86400 * 1000, span_ms))
    return base + src.choice((dt.timedelta(0), dt.timedelta(0), MS, -MS))


def _profile(src: _Source, schema: Schema, now: dt.datetime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, ftype in schema.profile.items():
        if src.percent(70):
            out[name] = value_for(src, name, ftype, now)
        elif src.percent(50):
            out[name] = _missing(src, ftype)
    return out


def _event(
    src: _Source,
    schema: Schema,
    contact: str,
    now: dt.datetime,
    earlier: dict[str, list[dt.datetime]],
    ids: list[str],
) -> Event:
    etype = src.choice(list(schema.events))
    if ids and src.percent(10):
        event_id: str | None = src.choice(ids)  # a repeat: the store keeps the first
    elif src.percent(20):
        event_id = None
    else:
        event_id = f"e{len(ids)}"
        ids.append(event_id)
    props: dict[str, Any] = {}
    for name, ftype in schema.events[etype].items():
        if src.percent(80):
            props[name] = value_for(src, name, ftype, now)
        elif src.percent(50):
            props[name] = _missing(src, ftype)
    context = src.choice(CONTEXT_VALUES[:4]) if src.percent(75) else None
    # often exactly D after one of the contact's own events: `then ... within D`
    ts = _instant(src, now, earlier.setdefault(contact, []))
    earlier[contact].append(ts)
    return Event(event_id, contact, etype, ts, context, props)


def generate(
    src: _Source, schema: Schema, max_contacts: int, max_events: int, now: dt.datetime | None
) -> StoreData:
    if now is None:
        if src.percent(80):
            now = src.choice(NOWS)
        else:
            base = dt.datetime(2026, 1, 1, tzinfo=UTC)
            now = base + dt.timedelta(milliseconds=src.integer(0, 364 * 86400 * 1000))
    n_contacts = src.integer(0, max_contacts)
    contacts = [f"c{i}" for i in range(n_contacts)]
    if contacts and src.percent(20):
        contacts[-1] = "42"  # a numeric-looking id stays a string
    profiles = {c: _profile(src, schema, now) for c in contacts if src.percent(60)}
    events: list[Event] = []
    earlier: dict[str, list[dt.datetime]] = {}
    ids: list[str] = []
    if contacts:
        for _ in range(src.integer(0, max_events)):
            contact = src.choice(contacts)
            events.append(_event(src, schema, contact, now, earlier, ids))
    return StoreData(schema, events, profiles, now)


@st.composite
def stores(
    draw: st.DrawFn,
    schema: Schema = TEST_SCHEMA,
    *,
    max_contacts: int = 6,
    max_events: int = 30,
    now: dt.datetime | None = None,
) -> StoreData:
    """Random stores over ``schema`` (``now`` drawn from the anchors unless given)."""
    return generate(_hypothesis_source(draw), schema, max_contacts, max_events, now)


def random_store(
    seed: int,
    schema: Schema = TEST_SCHEMA,
    *,
    n_contacts: int = 50,
    n_events: int = 500,
    now: dt.datetime | None = None,
) -> StoreData:
    """A seeded store (same seed, same store) of up to the given sizes."""
    rng = random.Random(seed)
    return generate(_Source(rng.randint), schema, n_contacts, n_events, now)
