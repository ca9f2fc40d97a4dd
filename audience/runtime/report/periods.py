"""The periods of a report: days, Monday weeks or calendar months in a time
zone, as the instants (ms) they start at, so a send's period is one
``searchsorted`` over a few hundred bounds, whatever the number of sends."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from audience.timecalc import local, to_ms, zone


@dataclass(frozen=True)
class Periods:
    """``starts[i]`` is the first instant of period i; ``starts[-1]`` is the
    end of the last one (exclusive).  The last period holds ``as_of`` and is
    still filling (provisional)."""

    by: str
    tz: str
    starts: np.ndarray  # int64 ms, ascending, len = periods + 1
    labels: tuple[str, ...]  # local date of each period's start, ISO

    def __len__(self) -> int:
        return len(self.labels)

    def index(self, ts: np.ndarray) -> np.ndarray:
        """The period of each instant; -1 before the first, len(self) after."""
        i = np.searchsorted(self.starts, ts, side="right") - 1
        return np.where(i >= len(self), len(self), i)


def periods(by: str, months: int, as_of_ms: int, tz: str) -> Periods:
    """The periods from the one holding ``as_of`` minus ``months`` calendar
    months (in ``tz``) to the one holding ``as_of``."""
    z = zone(tz)
    now = local(as_of_ms, tz).date()
    y, m = divmod(now.year * 12 + now.month - 1 - months, 12)
    first = _floor(dt.date(y, m + 1, min(now.day, _days_in(y, m + 1))), by)
    days: list[dt.date] = [first]
    while days[-1] <= now:
        days.append(_next(days[-1], by))
    starts = np.array([_midnight(d, z) for d in days], dtype=np.int64)
    return Periods(by, tz, starts, tuple(d.isoformat() for d in days[:-1]))


def _floor(d: dt.date, by: str) -> dt.date:
    if by == "week":
        return d - dt.timedelta(days=d.weekday())
    if by == "month":
        return d.replace(day=1)
    return d


def _next(d: dt.date, by: str) -> dt.date:
    if by == "day":
        return d + dt.timedelta(days=1)
    if by == "week":
        return d + dt.timedelta(days=7)
    y, m = divmod(d.year * 12 + d.month, 12)
    return dt.date(y, m + 1, 1)


def _days_in(y: int, m: int) -> int:
    nxt = dt.date(y + m // 12, m % 12 + 1, 1)
    return (nxt - dt.timedelta(days=1)).day


def _midnight(d: dt.date, z: dt.tzinfo) -> int:
    # a midnight skipped by a DST change (fold 0 reads it with the offset
    # before the change) lands on the first instant that exists that day
    return to_ms(dt.datetime(d.year, d.month, d.day, tzinfo=z))
