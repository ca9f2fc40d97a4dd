"""Time zones and calendar arithmetic, for everything that computes with time.

Instants are int64 milliseconds since the epoch (UTC), as the store keeps
them.  Minutes to weeks are fixed lengths; a month is a calendar month in a
time zone, clamped to the month's end (Jan 31 + 1 month = Feb 28 or 29), so
adding months needs the zone.  This module imports nothing of the package:
the language, the compiler and the runtime all build on it.
"""

from __future__ import annotations

import calendar
import datetime as dt
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The fixed-length units, in seconds (a month has none).
UNIT_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}


class UnknownZone(ZoneInfoNotFoundError):
    """A time zone name that is not an IANA zone of this system (a
    ``ZoneInfoNotFoundError``, so code catching that still does)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown time zone {self.name!r} (an IANA name, such as 'Europe/Rome' or 'UTC')"


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The zone called ``name``; ``UnknownZone`` when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: not a key at all ('../x', '/etc/x'); OSError: a
        # directory of the zone database, such as 'America'.
        raise UnknownZone(name) from None


class Duration(Protocol):
    """``n`` units, one of ``UNIT_SECONDS`` or ``"month"`` (the language's
    ``Duration`` is one)."""

    @property
    def n(self) -> int: ...
    @property
    def unit(self) -> str: ...


def to_ms(d: dt.datetime) -> int:
    """The instant of an aware datetime, in ms (exact: no float on the way)."""
    delta = d - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def iso_utc(ms: int, timespec: str = "milliseconds") -> str:
    """An instant as ISO 8601 UTC with a ``Z`` (``timespec`` as datetime's), exact
    (no float); outside datetime's range, ``"<ms> ms"``."""
    try:
        t = EPOCH + dt.timedelta(milliseconds=ms)
    except OverflowError:
        return f"{ms} ms"
    return t.isoformat(timespec=timespec).replace("+00:00", "Z")


def local(t_ms: int, tz: str) -> dt.datetime:
    """The instant ``t_ms`` as an aware datetime in the zone called ``tz``."""
    return (EPOCH + dt.timedelta(milliseconds=t_ms)).astimezone(zone(tz))


def plus(t_ms: int, d: Duration, tz: str, sign: int = 1) -> int:
    """``t + d`` (``t - d`` with ``sign`` -1): a fixed length, or calendar months
    in ``tz`` keeping the wall-clock time, clamped to the month's end."""
    if d.unit != "month":
        return t_ms + sign * d.n * UNIT_SECONDS[d.unit] * 1000
    t = local(t_ms, tz)
    y, m = divmod(t.year * 12 + (t.month - 1) + sign * d.n, 12)
    day = min(t.day, calendar.monthrange(y, m + 1)[1])
    moved = t.replace(tzinfo=None).replace(year=y, month=m + 1, day=day)
    return to_ms(moved.replace(tzinfo=zone(tz)))


def minus(t_ms: int, d: Duration, tz: str) -> int:
    """``t - d``: see ``plus``."""
    return plus(t_ms, d, tz, -1)
