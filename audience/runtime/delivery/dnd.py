"""DND policy enforcement (docs/language/dnd.md): rolling caps, channels, quiet hours.

A ``Policy`` is the runtime form of a ``DndPolicy`` AST.  ``first_broken``
decides one delivery against the times of the deliveries already counted for
the contact; the log (and the batch kernel) gather those times.

A new delivery at ``t`` is allowed when every window of a cap that contains
``t`` keeps at most N deliveries with it.  When deliveries are recorded in
time order this is exactly docs/language/dnd.md's "window ending at the moment of the new
delivery"; checking the later windows too keeps the promise ("at most N in
any rolling window") when a deferred or delayed delivery was already reserved
for a later time.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from audience.dsl import ast
from audience.dsl.formatter import format_text
from audience.timecalc import local, plus, to_ms, zone


@dataclass(frozen=True)
class CapRule:
    """``max N per K UNIT``; ``fixed_ms`` is the window length, None for months
    (calendar months in the policy's time zone)."""

    max: int
    per: ast.Duration
    text: str
    fixed_ms: int | None


@dataclass(frozen=True)
class QuietSpan:
    """Local wall-clock span ``[start, end)`` in ms of the day (wraps midnight when start > end)."""

    start_ms: int
    end_ms: int
    timezone: str
    end: dt.time


@dataclass(frozen=True)
class Policy:
    name: str
    caps: tuple[CapRule, ...] = ()
    channels: tuple[str, ...] = ()  # empty: every channel
    is_global: bool = False
    quiet: QuietSpan | None = None
    timezone: str = "UTC"

    @classmethod
    def from_ast(cls, node: ast.DndPolicy) -> Policy:
        tz = node.tz_name
        zone(tz)  # an unknown zone fails here, not at the first delivery
        caps = tuple(
            CapRule(
                c.max,
                c.per,
                format_text(c),
                None if c.per.unit == "month" else c.per.n * ast.UNIT_SECONDS[c.per.unit] * 1000,
            )
            for c in node.caps
        )
        quiet = None
        qh = node.quiet_hours
        if qh is not None:
            qtz = qh.timezone or tz
            zone(qtz)
            quiet = QuietSpan(
                (qh.start.hour * 60 + qh.start.minute) * 60_000,
                (qh.end.hour * 60 + qh.end.minute) * 60_000,
                qtz,
                dt.time(qh.end.hour, qh.end.minute),
            )
        return cls(node.name, caps, node.channels, node.is_global, quiet, tz)

    def applies_to(self, channel: str) -> bool:
        """A policy ``for email`` caps (and counts) email deliveries only."""
        return not self.channels or channel in self.channels

    def defer(self, t_ms: int) -> int:
        """``t_ms``, or the end of the quiet hours it falls in."""
        q = self.quiet
        if q is None or q.start_ms == q.end_ms:
            return t_ms
        t = local(t_ms, q.timezone)
        wall = ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000
        day = t.date()
        if q.start_ms < q.end_ms:
            if not q.start_ms <= wall < q.end_ms:
                return t_ms
        elif wall >= q.start_ms:
            day += dt.timedelta(days=1)  # the span runs past midnight: it ends tomorrow
        elif wall >= q.end_ms:
            return t_ms
        end = dt.datetime.combine(day, q.end, tzinfo=zone(q.timezone))
        return max(to_ms(end), t_ms)

    def window_lo(self, cap: CapRule, s_ms: int) -> int:
        """The exclusive start of the window of ``cap`` ending at ``s_ms``."""
        if cap.fixed_ms is not None:
            return s_ms - cap.fixed_ms
        return plus(s_ms, cap.per, self.timezone, -1)

    def window_hi(self, cap: CapRule, t_ms: int) -> int:
        """Windows of ``cap`` ending before this instant (exclusive) can hold ``t_ms``."""
        if cap.fixed_ms is not None:
            return t_ms + cap.fixed_ms
        return plus(t_ms, cap.per, self.timezone)

    def horizon(self, t_ms: int) -> tuple[int, int]:
        """Counted deliveries outside ``(lo, hi)`` cannot affect a delivery at ``t_ms``."""
        if not self.caps:
            return t_ms, t_ms
        lo = min(self.window_lo(c, t_ms) for c in self.caps)
        hi = max(self.window_hi(c, t_ms) for c in self.caps)
        return lo, hi

    def first_broken(self, t_ms: int, times: Sequence[int]) -> CapRule | None:
        """The first cap (in policy order) that a delivery at ``t_ms`` would break,
        given the sorted times of the deliveries already counted."""
        for cap in self.caps:
            ends = [t_ms, *(u for u in times[bisect.bisect_left(times, t_ms) :])]
            for s in ends:
                lo = self.window_lo(cap, s)
                if lo >= t_ms:
                    break  # later windows no longer hold t
                held = bisect.bisect_right(times, s) - bisect.bisect_right(times, lo)
                if held + 1 > cap.max:
                    return cap
        return None
