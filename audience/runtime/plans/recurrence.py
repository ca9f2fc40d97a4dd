"""When a plan is due: a schedule's occurrences as UTC instants (epoch milliseconds).

A schedule is local wall time in its zone ("every Monday at 09:00 in Rome").
Its dates and times are expanded as naive local datetimes (dateutil's rrule,
which knows nothing of zones), and only then each one is placed in the zone:

- a local time that does not exist (the clocks jump over it, a DST gap) runs at
  the first whole minute after the gap;
- a local time that happens twice (the clocks go back, a fold) runs once, at
  its first occurrence (``fold=0``);
- ``every month on day 31`` runs on each month's last day (day 30 in April,
  the 28th or 29th in February), and likewise for days 29 and 30;
- ``every N weeks`` counts weeks (Monday to Sunday) from the week of its
  ``from`` date, ``every N days`` days from that date;
- ``from`` and ``until`` are inclusive local dates: they bound the dates the
  schedule names, whatever instant a gap moves an occurrence to.

Expanding on UTC instead would move "09:00" by an hour twice a year; adding a
day's worth of milliseconds to the previous occurrence would do the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from dateutil import rrule

from audience.dsl.ast_sending import WEEKDAYS, Schedule

__all__ = ["local_instant", "next_occurrence", "occurrences"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)
# Local dates this far either side of a requested span are expanded too: a
# zone's offset (up to 26 hours away from UTC) or a gap (Samoa skipped a whole
# day in 2011) can move an occurrence's instant to another UTC date.
_MARGIN = dt.timedelta(days=3)
# datetime's calendar ends at years 1 and 9999; the language's dates stay in 1000..9000.
_FIRST = dt.datetime(900, 1, 1)
_LAST = dt.datetime(9998, 12, 1)
_RRULE_DAYS = (rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU)


def occurrences(when: Schedule, after_ms: int, until_ms: int) -> list[int]:
    """The due instants (UTC epoch ms) of the schedule with after_ms < t <= until_ms, in order.

    Raises ``zoneinfo.ZoneInfoNotFoundError`` for an unknown zone and ValueError
    for a schedule the checker rejects (an interval below 1, ``every N ...``
    without ``from``)."""
    if until_ms <= after_ms:
        return []
    zone = ZoneInfo(when.tz_name)
    start = max(_local(after_ms, zone) - _MARGIN, _FIRST)
    stop = min(_local(until_ms, zone) + _MARGIN, _LAST)
    found: list[int] = []
    for local in _local_times(when, start, stop):
        t = _ms(local_instant(local, zone))
        if after_ms < t <= until_ms and (not found or t > found[-1]):
            found.append(t)  # two dates a gap moves onto one instant run once
    return found


def next_occurrence(when: Schedule, after_ms: int) -> int | None:
    """The first due instant strictly after after_ms, or None when the schedule has ended."""
    end = _end_ms(when)
    span = _first_span_ms(when)
    start = after_ms
    while start < end:
        stop = min(start + span, end)
        found = occurrences(when, start, stop)
        if found:
            return found[0]
        start = stop
        span *= 2
    return None


def _first_span_ms(when: Schedule) -> int:
    """A span that usually holds the next occurrence, so one expansion finds it."""
    days = {"daily": 2, "weekly": 8, "monthly": 32}.get(when.kind, 8)
    if when.kind in ("every_n_days", "every_n_weeks"):
        unit = 1 if when.kind == "every_n_days" else 7
        days = unit * min(max(when.interval or 1, 1), 1000) + 1
    return days * 86_400_000


def local_instant(local: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant at which ``zone``'s clocks read the naive ``local`` time:
    its first one in a fold; in a gap, the first whole minute after the gap."""
    placed = local.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    if placed.astimezone(zone).replace(tzinfo=None) == local:
        return placed  # fold=0 is the earlier of two readings
    # In a gap both folds give an instant, with the offsets before and after
    # it; the transition lies between them.
    other = local.replace(tzinfo=zone, fold=1).astimezone(dt.UTC)
    lo, hi = min(placed, other), max(placed, other)
    after = hi.astimezone(zone).utcoffset()
    while hi - lo > dt.timedelta(seconds=1):  # transitions fall on whole seconds
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if mid.astimezone(zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    wall = hi.astimezone(zone)
    if wall.second or wall.microsecond:  # old local-mean-time offsets have seconds
        hi += dt.timedelta(seconds=60 - wall.second) - dt.timedelta(microseconds=wall.microsecond)
    return hi


# ------------------------------------------------------------------ expansion on wall time


def _local_times(when: Schedule, start: dt.datetime, stop: dt.datetime) -> Iterator[dt.datetime]:
    """The schedule's naive local datetimes from ``start`` to ``stop``, in order,
    within its from/until dates."""
    at = dt.time(when.at.hour, when.at.minute)
    first = max(start.date(), when.from_date) if when.from_date else start.date()
    last = min(stop.date(), when.until_date) if when.until_date else stop.date()
    if when.kind == "once":
        if when.on_date is not None and start.date() <= when.on_date <= stop.date():
            yield dt.datetime.combine(when.on_date, at)
        return
    if first > last:
        return
    until = dt.datetime.combine(last, at)
    rule = _rule(when, first, at)
    if rule is None:
        return
    yield from rule.between(dt.datetime.combine(first, at), until, inc=True)


def _rule(when: Schedule, first: dt.date, at: dt.time) -> rrule.rrule | None:
    """An rrule whose occurrences from ``first`` on are the schedule's."""
    begin = dt.datetime.combine(first, at)
    if when.kind == "daily":
        return rrule.rrule(rrule.DAILY, dtstart=begin)
    if when.kind == "weekly":
        if not when.weekdays:
            return None
        return rrule.rrule(rrule.WEEKLY, dtstart=begin, byweekday=_days(when.weekdays))
    if when.kind == "monthly":
        day = when.month_day
        if day is None or not 1 <= day <= 31:
            raise ValueError(f"a monthly schedule needs a day from 1 to 31, not {day}")
        # Day 31 in a 30-day month: the last of the days 28..31 that the month has.
        month_days = tuple(range(min(day, 28), day + 1))
        return rrule.rrule(
            rrule.MONTHLY, dtstart=begin.replace(day=1), bymonthday=month_days, bysetpos=-1
        )
    anchor, interval = _anchor(when)
    if when.kind == "every_n_days":
        skip = max((first - anchor).days // interval, 0)
        dtstart = dt.datetime.combine(anchor + dt.timedelta(days=skip * interval), at)
        return rrule.rrule(rrule.DAILY, interval=interval, dtstart=dtstart)
    if when.kind == "every_n_weeks":
        monday = anchor - dt.timedelta(days=anchor.weekday())
        skip = max((first - monday).days // (7 * interval), 0)
        week = monday + dt.timedelta(weeks=skip * interval)
        days = when.weekdays or (WEEKDAYS[anchor.weekday()],)
        return rrule.rrule(
            rrule.WEEKLY,
            interval=interval,
            wkst=rrule.MO,
            dtstart=dt.datetime.combine(week, at),
            byweekday=_days(days),
        )
    raise ValueError(f"unknown schedule kind {when.kind!r}")


def _anchor(when: Schedule) -> tuple[dt.date, int]:
    if when.from_date is None:
        raise ValueError(f"'{when.kind}' needs a from date to count from")
    if when.interval is None or when.interval < 1:
        raise ValueError(f"an interval must be at least 1, not {when.interval}")
    return when.from_date, when.interval


def _days(weekdays: tuple[str, ...]) -> tuple[rrule.weekday, ...]:
    return tuple(_RRULE_DAYS[WEEKDAYS.index(d)] for d in weekdays)


# ------------------------------------------------------------------ instants


def _ms(t: dt.datetime) -> int:
    return (t - _EPOCH) // _MS


def _local(ms: int, zone: ZoneInfo) -> dt.datetime:
    """The naive local time at ``ms``, clamped to datetime's calendar."""
    low, high = _ms(_FIRST.replace(tzinfo=dt.UTC)), _ms(_LAST.replace(tzinfo=dt.UTC))
    t = _EPOCH + max(low, min(ms, high)) * _MS
    return t.astimezone(zone).replace(tzinfo=None)


def _end_ms(when: Schedule) -> int:
    """An instant after the schedule's last possible occurrence."""
    if when.kind == "once" and when.on_date is not None:
        last = when.on_date
    elif when.until_date is not None:
        last = when.until_date
    else:
        return _ms(_LAST.replace(tzinfo=dt.UTC))
    return _ms(dt.datetime.combine(last, dt.time(0), tzinfo=dt.UTC) + _MARGIN)
