"""AST nodes of scheduled sending: deliveries and plans.

``delivery "Name" { ... }`` is a message (a saved template plus its envelope)
that plans send; ``plan "Name" { ... }`` sends a delivery to a segment on a
schedule (its ``when`` clause, a ``Schedule``).  Frozen dataclasses with spans
excluded from equality, like the rest of the AST (``audience.dsl.ast``, which
re-exports these in its ``Definition`` union).

A schedule is local wall time: ``at`` and the dates are read in ``timezone``
(None: not written, UTC); ``audience.runtime.plans.recurrence`` turns it into
instants.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from audience.dsl.ast import NOSPAN, Cond, Duration, MapValue, Span


def _lines() -> tuple[Span, ...]:
    return field(default=(), compare=False, hash=False, repr=False)


def _span() -> Span:
    return field(default=NOSPAN, compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class DeliveryDef:
    """``delivery "Name" { template "t" ... }``: every line but ``template`` is optional."""

    name: str
    template: str
    mail_group: str | None = None
    subject: str | None = None  # overrides the template's subject; may hold {{ fields }}
    from_addr: str | None = None
    sender: str | None = None
    reply_to: str | None = None
    fields: MapValue | None = None  # literals and profile.x references, as in trigger actions
    test_list: tuple[str, ...] = ()
    span: Span = _span()
    name_span: Span = _span()  # the name as written
    template_span: Span = _span()  # the template's name string
    test_list_span: Span = _span()  # the whole `test list (...)` line
    line_spans: tuple[Span, ...] = _lines()  # each line as written (comments anchor to them)


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)

ScheduleKind = Literal["once", "daily", "weekly", "monthly", "every_n_days", "every_n_weeks"]


@dataclass(frozen=True, slots=True)
class Schedule:
    """A plan's ``when``.  Which fields a kind uses:

    - ``once``: ``on_date`` (``once at 2027-03-11 10:00``);
    - ``daily``: none (``every day at 09:00``);
    - ``weekly``: ``weekdays`` (``every week on monday, thursday at 09:00``);
    - ``monthly``: ``month_day`` 1..31, a day the month lacks meaning its last day;
    - ``every_n_days``: ``interval``; counted from ``from_date``, which it requires;
    - ``every_n_weeks``: ``interval`` and optional ``weekdays`` (none: the weekday of
      ``from_date``); counted from the week (Monday to Sunday) of ``from_date``.

    ``from_date`` / ``until_date`` are inclusive local dates (repeated kinds only)."""

    kind: ScheduleKind
    at: dt.time  # local wall time, whole minutes
    on_date: dt.date | None = None
    weekdays: tuple[Weekday, ...] = ()
    month_day: int | None = None
    interval: int | None = None
    timezone: str | None = None  # None: not written, UTC
    from_date: dt.date | None = None
    until_date: dt.date | None = None
    span: Span = _span()
    at_span: Span = _span()  # the time of day (with its date for `once`)
    weekdays_span: Span = _span()  # `on DAY, ...` (weekly kinds), or where it would go
    number_span: Span = _span()  # the day of the month or the interval
    timezone_span: Span = _span()
    from_span: Span = _span()
    until_span: Span = _span()

    @property
    def tz_name(self) -> str:
        return self.timezone or "UTC"

    @property
    def repeats(self) -> bool:
        return self.kind != "once"


@dataclass(frozen=True, slots=True)
class Plan:
    """``plan "Name" { who ... when ... send "Delivery" [dnd "P"] [late up to D] }``."""

    name: str
    who: Cond | str  # str: a saved segment's name; Cond: a condition written inline
    when: Schedule
    send: str  # a delivery's name
    dnd: str | None = None  # a DND policy's name
    lateness: Duration | None = None  # `late up to D`; None: the default, 1 hour
    span: Span = _span()
    name_span: Span = _span()  # the name as written
    who_span: Span = _span()  # the segment's name string, or the inline condition
    send_span: Span = _span()  # the delivery's name string
    dnd_span: Span = _span()  # the policy's name string
    line_spans: tuple[Span, ...] = _lines()  # each line as written (comments anchor to them)

    @property
    def tz_name(self) -> str:
        return self.when.tz_name


DEFAULT_LATENESS = Duration(1, "hour")
