"""Short constructors for hand-written reference cases: events, ASTs, runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from audience.dsl.ast import (
    Cond,
    Count,
    DateLit,
    DateTimeLit,
    Did,
    Duration,
    EventSel,
    Field,
    Pred,
    ProfileCond,
    Segment,
    TimeUnit,
    Window,
)

from .evaluator import Event, evaluate
from .timewin import zone
from .vocab import TEST_SCHEMA

UTC = dt.UTC
ROME = "Europe/Rome"
NOW = dt.datetime(2026, 3, 31, 10, 0, tzinfo=UTC)  # a Tuesday, a month end


def t(text: str) -> dt.datetime:
    """An ISO instant (with offset) as UTC."""
    return dt.datetime.fromisoformat(text).astimezone(UTC)


_ids = iter(range(10**9))


def ev(
    contact: str,
    etype: str,
    ts: str,
    *,
    context: str | None = "WEB",
    id: str | None = "auto",
    **props: Any,
) -> Event:
    event_id = f"x{next(_ids)}" if id == "auto" else id
    return Event(event_id, contact, etype, t(ts), context, props)


def run(
    cond: Cond,
    events: list[Event],
    profiles: dict[str, dict[str, Any]] | None = None,
    *,
    now: dt.datetime = NOW,
    tz: str = "UTC",
    segments: dict[str, Segment] | None = None,
) -> set[str]:
    return evaluate(
        cond,
        events=events,
        profiles=profiles or {},
        schema=TEST_SCHEMA,
        now=now,
        timezone=tz,
        segments=segments,
    )


def sel(*types: str) -> EventSel:
    return EventSel(types or None)


def did(
    etype: str = "purchased",
    where: Pred | None = None,
    count: Count | None = None,
    window: Window | None = None,
) -> Did:
    return Did(sel(etype), where, count, window)


def dur(n: int, unit: TimeUnit) -> Duration:
    return Duration(n, unit)


def last(n: int, unit: TimeUnit) -> Window:
    return Window("last", duration=dur(n, unit))


def at(text: str) -> DateTimeLit:
    return DateTimeLit(dt.datetime.fromisoformat(text))


def day(text: str, tz: str = "UTC") -> DateLit:
    return DateLit(dt.date.fromisoformat(text), zone(tz))


def ef(name: str) -> Field:
    return Field("event", tuple(name.split(".")))


def pf(name: str) -> Field:
    return Field("profile", tuple(name.split(".")))


def prof(pred: Any) -> ProfileCond:
    return ProfileCond(pred)
