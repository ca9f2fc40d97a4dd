"""Windows, recencies and relative time bounds -> absolute inclusive ms ranges.

Run at evaluation time (the ranges depend on ``now``).  Minutes to weeks are
fixed lengths; a month is a calendar month in the definition's time zone,
clamped to the month's end (the arithmetic is audience.timecalc's); calendar
windows (today, this week, ...) start at local midnight in that zone
(DST-aware through zoneinfo).
"""

from __future__ import annotations

import datetime as dt

from audience.compiler import plan as p
from audience.dsl import ast
from audience.timecalc import local, minus, to_ms, zone

INT64_MIN = -(2**63)
Range = tuple[int, int]  # inclusive [lo, hi] in ms


def _midnight(day: dt.date, tz: str) -> int:
    return to_ms(dt.datetime.combine(day, dt.time(0, 0), tzinfo=zone(tz)))


def _first_of_month(day: dt.date, back: int) -> dt.date:
    y, m = divmod(day.year * 12 + day.month - 1 - back, 12)
    return dt.date(y, m + 1, 1)


def _instant(t: ast.TimeLit) -> int:
    return to_ms(t.start() if isinstance(t, ast.DateLit) else t.value)


def _end_inclusive(t: ast.TimeLit) -> int:
    """The last ms a ``between`` high end covers: a date covers its whole day."""
    return to_ms(t.end()) - 1 if isinstance(t, ast.DateLit) else to_ms(t.value)


def window_range(w: p.WindowRef, now_ms: int) -> Range:
    """The inclusive ms range of a window, never past ``now``."""
    win, tz = w.window, w.tz
    lo, hi = _window_bounds(win, tz, now_ms)
    return lo, min(hi, now_ms)


def _window_bounds(win: ast.Window, tz: str, now_ms: int) -> Range:
    kind = win.kind
    if kind == "last":
        assert win.duration is not None
        return minus(now_ms, win.duration, tz) + 1, now_ms
    if kind == "since":
        assert win.start is not None
        return _instant(win.start), now_ms
    if kind == "before":
        assert win.end is not None
        return INT64_MIN, _instant(win.end) - 1
    if kind == "between":
        assert win.start is not None and win.end is not None
        return _instant(win.start), _end_inclusive(win.end)
    if kind == "on":
        assert isinstance(win.start, ast.DateLit)
        return to_ms(win.start.start()), to_ms(win.start.end()) - 1
    today = local(now_ms, tz).date()
    if kind == "today":
        return _midnight(today, tz), now_ms
    if kind == "yesterday":
        return _midnight(today - dt.timedelta(days=1), tz), _midnight(today, tz) - 1
    monday = today - dt.timedelta(days=today.weekday())
    if kind == "this_week":
        return _midnight(monday, tz), now_ms
    if kind == "last_week":
        return _midnight(monday - dt.timedelta(days=7), tz), _midnight(monday, tz) - 1
    if kind == "this_month":
        return _midnight(_first_of_month(today, 0), tz), now_ms
    if kind == "last_month":
        start = _midnight(_first_of_month(today, 1), tz)
        return start, _midnight(_first_of_month(today, 0), tz) - 1
    raise ValueError(f"no rule for window kind {kind!r}")


def recency_range(rec: ast.Recency, tz: str, now_ms: int) -> Range:
    """The inclusive range the newest/oldest event's ts must fall in."""
    kind = rec.kind
    if kind in ("more_than_ago", "less_than_ago", "in_last"):
        assert rec.duration is not None
        edge = minus(now_ms, rec.duration, tz)
        if kind == "more_than_ago":
            return INT64_MIN, edge - 1
        return edge + 1, now_ms
    if kind == "before":
        assert rec.end is not None
        return INT64_MIN, min(_instant(rec.end) - 1, now_ms)
    if kind == "since":
        assert rec.start is not None
        return _instant(rec.start), now_ms
    if kind == "between":
        assert rec.start is not None and rec.end is not None
        return _instant(rec.start), min(_end_inclusive(rec.end), now_ms)
    raise ValueError(f"no rule for recency kind {kind!r}")


def time_ref_ms(ref: p.TimeRef, tz: str, now_ms: int) -> int:
    if ref.kind == "abs":
        return ref.ms
    if ref.kind == "now":
        return now_ms
    assert ref.duration is not None
    return minus(now_ms, ref.duration, tz)


def day_threshold(op: str, instant_ms: int, tz: str) -> tuple[str, int] | bool:
    """``date_value OP instant`` as a comparison on day numbers, where a date
    stands for its first instant in ``tz``.  Returns ``(op, day)``, or a bool
    when every present date gives the same answer (``= 12:00`` is never true)."""
    t = local(instant_ms, tz)
    day = (t.date() - dt.date(1970, 1, 1)).days
    if _midnight(t.date(), tz) == instant_ms:
        return op, day
    # the instant falls inside `day`: a date is <= day exactly when its start is before it
    if op == "=":
        return False
    if op == "!=":
        return True
    if op in ("<", "<="):
        return "<=", day
    return ">=", day + 1
