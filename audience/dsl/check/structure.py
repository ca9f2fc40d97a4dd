"""Checks that need no schema: time zones, counts, durations, regular
expressions, time ranges and the shape of DND policies."""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo

from audience.dsl.ast import (
    Count,
    DateLit,
    DndPolicy,
    Duration,
    Global,
    QuietHours,
    Recency,
    Span,
    TextMatch,
    TimeLit,
    Window,
)
from audience.dsl.check.context import Ctx, head_span, known
from audience.dsl.check.names import closest


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(ctx: Ctx, name: str | None, span: Span) -> None:
    if name is None or name in _zones():
        return
    best = closest(name, _zones())
    ctx.error(
        "unknown_timezone",
        f"unknown time zone '{name}'",
        span,
        f"did you mean '{best}'?" if best else "use an IANA name such as 'Europe/Rome'",
    )


def check_count(ctx: Ctx, count: Count | None) -> None:
    if count is None:
        return
    if count.n < 0 or (count.high is not None and count.high < 0):
        ctx.error("invalid_count", "a count cannot be negative", count.span)
    elif count.high is not None and count.n > count.high:
        ctx.error(
            "invalid_count",
            f"'between {count.n} and {count.high} times' is empty: {count.n} > {count.high}",
            count.span,
            f"write 'between {count.high} and {count.n} times'",
        )


# The longest duration per unit: 1,000 years.  Longer ones mean nothing for a
# shop and would overflow calendar arithmetic.
MAX_DURATION = {"minute": 525_960_000, "hour": 8_766_000, "day": 365_250, "week": 52_179}
MAX_DURATION["month"] = 12_000


def check_duration(ctx: Ctx, d: Duration | None) -> None:
    if d is not None and d.n <= 0:
        ctx.error(
            "invalid_duration",
            f"a duration must be positive, found {d.n} {d.unit}(s)",
            d.span,
            f"write at least 1 {d.unit}",
        )
    elif d is not None and d.n > MAX_DURATION[d.unit]:
        ctx.error(
            "invalid_duration",
            f"a duration must be at most 1,000 years, found {d.n:,} {d.unit}s",
            d.span,
            f"write at most {MAX_DURATION[d.unit]:,} {d.unit}s",
        )


def check_regex(ctx: Ctx, m: TextMatch) -> None:
    if m.op != "matches":
        return
    try:
        re.compile(m.value.value)
    except re.error as exc:
        ctx.error(
            "invalid_regex",
            f"invalid regular expression: {exc.msg}",
            m.value.span,
            f"at position {exc.pos} of the pattern" if exc.pos is not None else None,
        )


def instant(t: TimeLit, *, end: bool = False) -> dt.datetime:
    """The instant a time literal stands for; a date as an upper bound is its whole day
    (the start of the next day, exclusive)."""
    if isinstance(t, DateLit):
        return t.end() if end else t.start()
    # The parser always gives a zone; a hand-built naive value is read as UTC
    # rather than crash the comparison.
    return t.value if t.value.tzinfo else t.value.replace(tzinfo=dt.UTC)


def is_empty_range(low: TimeLit, high: TimeLit) -> bool:
    start, stop = instant(low), instant(high, end=True)
    # A date upper bound is exclusive (next midnight); a datetime one inclusive.
    return start >= stop if isinstance(high, DateLit) else start > stop


def check_time_range(ctx: Ctx, node: Window | Recency) -> None:
    check_duration(ctx, node.duration)
    start, end = node.start, node.end
    empty = start is not None and end is not None and is_empty_range(start, end)
    if node.kind == "between" and empty:
        ctx.error(
            "invalid_range",
            "the range is empty: its start is after its end",
            node.span,
            "write the earlier time first",
        )


def check_policy(ctx: Ctx, policy: DndPolicy) -> None:
    check_timezone(ctx, policy.timezone, known(policy.timezone_span, head_span(policy)))
    if not policy.caps:
        ctx.error(
            "dnd_without_cap",
            f"DND policy '{policy.name}' has no cap",
            head_span(policy),
            "add a cap such as 'max 1 per day'",
        )
    for cap in policy.caps:
        if cap.max < 0:
            ctx.error("invalid_count", "a cap cannot be negative", cap.span)
        check_duration(ctx, cap.per)
    seen: set[type] = set()
    for item in policy.items:
        if isinstance(item, Global | QuietHours) and type(item) in seen:
            what = "global" if isinstance(item, Global) else "quiet hours"
            ctx.error("duplicate_option", f"'{what}' is given twice", item.span)
        seen.add(type(item))
        if isinstance(item, QuietHours):
            check_quiet_hours(ctx, item)


def check_quiet_hours(ctx: Ctx, q: QuietHours) -> None:
    for clock in (q.start, q.end):
        if not (0 <= clock.hour <= 23 and 0 <= clock.minute <= 59):
            ctx.error(
                "invalid_quiet_hours",
                f"{clock.hour:02d}:{clock.minute:02d} is not a time of day",
                clock.span,
                "write a time from 00:00 to 23:59",
            )
    if (q.start.hour, q.start.minute) == (q.end.hour, q.end.minute):
        ctx.error(
            "invalid_quiet_hours",
            "quiet hours start and end at the same time",
            q.span,
            "write a span such as 'quiet hours 22:00 to 08:00'",
        )
    check_timezone(ctx, q.timezone, known(q.timezone_span, q.span))
