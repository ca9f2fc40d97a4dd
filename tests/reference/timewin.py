"""Time arithmetic of the reference evaluator: durations, months, windows.

Everything here returns instants as aware ``datetime`` in UTC.  Python compares
two datetimes that share one ``tzinfo`` by wall clock (ignoring ``fold``) and
does wall-clock arithmetic on them, so every instant is brought to UTC before
it is compared or shifted by a ``timedelta``.

Choices made where SPEC section 2/3 is silent (see ``evaluator`` for the list):
- a local wall-clock time that a DST change makes ambiguous or nonexistent is
  read with ``fold=0`` (Python ``zoneinfo``): an ambiguous time is its first
  occurrence, a skipped time keeps the offset in force before the jump
  (02:30 on 2026-03-29 in Europe/Rome is 01:30Z);
- a month shift keeps the local wall time and clamps the day to the month's
  end in the definition's zone, then reads the wall time with ``fold=0``;
- calendar windows start at local midnight, weeks on Monday.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

from audience.dsl.ast import UNIT_SECONDS, DateLit, DateTimeLit, Duration, Recency, Window

UTC = dt.UTC


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def utc(instant: dt.datetime) -> dt.datetime:
    """An aware datetime as the same instant in UTC."""
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant!r}: instants must be timezone-aware")
    return instant.astimezone(UTC)


def wall_to_instant(wall: dt.datetime, tz: str) -> dt.datetime:
    """A naive local wall-clock time in ``tz`` (read with fold=0) as a UTC instant."""
    return wall.replace(tzinfo=zone(tz), fold=0).astimezone(UTC)


def local_midnight(day: dt.date, tz: str) -> dt.datetime:
    return wall_to_instant(dt.datetime.combine(day, dt.time(0, 0)), tz)


def local_date(instant: dt.datetime, tz: str) -> dt.date:
    return utc(instant).astimezone(zone(tz)).date()


def add_months(instant: dt.datetime, months: int, tz: str) -> dt.datetime:
    """``instant`` shifted by whole calendar months (negative: back) in ``tz``,
    keeping the wall time and clamping the day to the target month's end."""
    local = utc(instant).astimezone(zone(tz))
    index = local.year * 12 + (local.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    wall = local.replace(tzinfo=None, year=year, month=month, day=day, fold=0)
    return wall_to_instant(wall, tz)


def shift(instant: dt.datetime, duration: Duration, tz: str, sign: int) -> dt.datetime:
    """``instant`` plus (sign=1) or minus (sign=-1) ``duration``."""
    if duration.unit == "month":
        return add_months(instant, sign * duration.n, tz)
    seconds = UNIT_SECONDS[duration.unit] * duration.n
    return utc(instant) + sign * dt.timedelta(seconds=seconds)


def minus(instant: dt.datetime, duration: Duration, tz: str) -> dt.datetime:
    return shift(instant, duration, tz, -1)


def plus(instant: dt.datetime, duration: Duration, tz: str) -> dt.datetime:
    return shift(instant, duration, tz, 1)


def lit_instant(lit: DateLit | DateTimeLit) -> dt.datetime:
    """A time literal as an instant: a date is the start of its day in its zone."""
    if isinstance(lit, DateLit):
        return utc(lit.start())
    return utc(lit.value)


@dataclass(frozen=True)
class Interval:
    """A set of instants ``lo (<|<=) t (<|<=) hi``; a ``None`` bound is open."""

    lo: dt.datetime | None = None
    lo_inclusive: bool = True
    hi: dt.datetime | None = None
    hi_inclusive: bool = True

    def __contains__(self, t: dt.datetime) -> bool:
        t = utc(t)
        if self.lo is not None and (t < self.lo or (t == self.lo and not self.lo_inclusive)):
            return False
        return not (
            self.hi is not None and (t > self.hi or (t == self.hi and not self.hi_inclusive))
        )

    def at_or_before(self, now: dt.datetime) -> Interval:
        """This interval intersected with ``t <= now``."""
        now = utc(now)
        if self.hi is None or self.hi > now or (self.hi == now and self.hi_inclusive):
            return Interval(self.lo, self.lo_inclusive, now, True)
        return self


def between(low: DateLit | DateTimeLit, high: DateLit | DateTimeLit) -> Interval:
    """``between T1 and T2``: ``T1 <= t <= T2``; a date T2 covers its whole day."""
    if isinstance(high, DateLit):
        return Interval(lit_instant(low), True, utc(high.end()), False)
    return Interval(lit_instant(low), True, lit_instant(high), True)


def _calendar(kind: str, now: dt.datetime, tz: str) -> Interval:
    today = local_date(now, tz)
    if kind == "today":
        return Interval(local_midnight(today, tz), True, None)
    if kind == "yesterday":
        start = local_midnight(today - dt.timedelta(days=1), tz)
        return Interval(start, True, local_midnight(today, tz), False)
    monday = today - dt.timedelta(days=today.weekday())
    if kind == "this_week":
        return Interval(local_midnight(monday, tz), True, None)
    if kind == "last_week":
        start = local_midnight(monday - dt.timedelta(days=7), tz)
        return Interval(start, True, local_midnight(monday, tz), False)
    first = today.replace(day=1)
    if kind == "this_month":
        return Interval(local_midnight(first, tz), True, None)
    if kind == "last_month":
        previous = (first - dt.timedelta(days=1)).replace(day=1)
        return Interval(local_midnight(previous, tz), True, local_midnight(first, tz), False)
    raise ValueError(f"unknown calendar window {kind!r}")


def window_interval(window: Window | None, now: dt.datetime, tz: str) -> Interval:
    """The instants a WINDOW admits, always limited to ``t <= now``."""
    if window is None:
        return Interval().at_or_before(now)
    kind = window.kind
    if kind == "last":
        assert window.duration is not None
        out = Interval(minus(now, window.duration, tz), False, None)
    elif kind == "since":
        assert window.start is not None
        out = Interval(lit_instant(window.start), True, None)
    elif kind == "before":
        assert window.end is not None
        out = Interval(None, True, lit_instant(window.end), False)
    elif kind == "between":
        assert window.start is not None and window.end is not None
        out = between(window.start, window.end)
    elif kind == "on":
        day = window.start
        if not isinstance(day, DateLit):
            raise ValueError("'on' takes a date")
        out = Interval(utc(day.start()), True, utc(day.end()), False)
    else:
        out = _calendar(kind, now, tz)
    return out.at_or_before(now)


def recency_interval(recency: Recency, now: dt.datetime, tz: str) -> Interval:
    """The instants a RECENCY admits for the newest/oldest event's ``ts``."""
    kind = recency.kind
    if kind in ("more_than_ago", "less_than_ago", "in_last"):
        assert recency.duration is not None
        edge = minus(now, recency.duration, tz)
        if kind == "more_than_ago":
            return Interval(None, True, edge, False)
        if kind == "less_than_ago":
            return Interval(edge, False, None)
        return Interval(edge, False, utc(now), True)
    if kind == "before":
        assert recency.end is not None
        return Interval(None, True, lit_instant(recency.end), False)
    if kind == "since":
        assert recency.start is not None
        return Interval(lit_instant(recency.start), True, None)
    if kind == "between":
        assert recency.start is not None and recency.end is not None
        return between(recency.start, recency.end)
    raise ValueError(f"unknown recency {kind!r}")
