"""The typed AST of the rule language (segments, triggers, DND policies; deliveries
and plans are in ``ast_sending`` and re-exported here).

Every node is a frozen dataclass with a ``span``.  Spans never take part in
equality, hashing or repr, so ``parse(format(ast)) == ast`` compares meaning,
not layout.  No Lark type appears here.

Normalisations the parser applies (so the formatter has one canonical text):
- ``did not E ...`` is ``Not(Did(...))``;
- ``all of (...)`` / ``any of (...)`` are ``And`` / ``Or`` with ``style``
  recording the written form (explain reports operands either way);
- ``a and b and c`` is one ``And`` with three operands; parentheses that group
  an ``And`` inside an ``And`` keep the nesting;
- the default count (``at least once``) is ``None``; ``never`` is
  ``Count("exactly", 0)``; ``at least once`` written out is ``Count("at_least", 1)``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias
from zoneinfo import ZoneInfo

from audience.timecalc import UNIT_SECONDS as UNIT_SECONDS  # the fixed-length units


@dataclass(frozen=True, slots=True)
class Span:
    """1-based line/column; ``end_column`` is exclusive (like Lark)."""

    line: int
    column: int
    end_line: int
    end_column: int


NOSPAN = Span(0, 0, 0, 0)


def _span() -> Span:
    return field(default=NOSPAN, compare=False, hash=False, repr=False)


# --------------------------------------------------------------------------- values

TimeUnit = Literal["minute", "hour", "day", "week", "month"]


@dataclass(frozen=True, slots=True)
class Duration:
    """``n`` units.  Minutes to weeks are fixed lengths; a month is a calendar month."""

    n: int
    unit: TimeUnit
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class StringLit:
    value: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class NumberLit:
    """``value`` is an ``int`` when written without a fraction or exponent."""

    value: int | float
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BoolLit:
    value: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class DateLit:
    """A calendar date, read in ``tz`` (the definition's time zone)."""

    value: dt.date
    tz: ZoneInfo
    span: Span = _span()

    def start(self) -> dt.datetime:
        """The first instant of the day in the definition's time zone."""
        return dt.datetime.combine(self.value, dt.time(0, 0), tzinfo=self.tz)

    def end(self) -> dt.datetime:
        """The first instant of the next day (exclusive end of the whole day)."""
        return dt.datetime.combine(self.value + dt.timedelta(days=1), dt.time(0, 0), tzinfo=self.tz)


@dataclass(frozen=True, slots=True)
class DateTimeLit:
    """Always timezone-aware.  Written without an offset, ``tzinfo`` is the
    definition's ``ZoneInfo``; with an offset (or ``Z``) it is a fixed
    ``datetime.timezone``.  The formatter prints it back the same way."""

    value: dt.datetime
    span: Span = _span()

    @property
    def has_offset(self) -> bool:
        return not isinstance(self.value.tzinfo, ZoneInfo)


TimeLit: TypeAlias = DateLit | DateTimeLit
Literal_: TypeAlias = StringLit | NumberLit | BoolLit | DateLit | DateTimeLit


# --------------------------------------------------------------------------- fields

Scope = Literal["event", "profile"]


@dataclass(frozen=True, slots=True)
class Field:
    """A property path.  ``scope`` is where the name is looked up: in an event
    predicate a bare name is an event property (``type``, ``context``, ``ts``
    included) and ``profile.x`` the contact's profile; in a profile predicate
    both ``city`` and ``profile.city`` are profile properties."""

    scope: Scope
    path: tuple[str, ...]
    span: Span = _span()

    @property
    def name(self) -> str:
        return ".".join(self.path)


# --------------------------------------------------------------------------- predicates

CompareOp = Literal["=", "!=", "<", "<=", ">", ">="]
TextOp = Literal["contains", "starts_with", "ends_with", "matches"]
TimeOp = Literal["before", "since"]
AgoOp = Literal["more_than_ago", "less_than_ago", "in_last"]


@dataclass(frozen=True, slots=True)
class Compare:
    """``field OP value``."""

    field: Field
    op: CompareOp
    value: Literal_
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Flag(Compare):
    """A bool property written alone (``vip``): ``vip = true``, kept apart only so
    that it is written back as it was; every pass sees a ``Compare``."""

    op: CompareOp = "="
    value: Literal_ = BoolLit(True)


@dataclass(frozen=True, slots=True)
class InList:
    """``field in (v, ...)`` / ``field not in (...)``."""

    field: Field
    values: tuple[Literal_, ...]
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Between:
    """``field between low and high`` (inclusive)."""

    field: Field
    low: Literal_
    high: Literal_
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TextMatch:
    """``contains`` / ``starts with`` / ``ends with`` / ``matches "re"``."""

    field: Field
    op: TextOp
    value: StringLit
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class IsSet:
    """``field is set`` (``negated``: ``is not set``)."""

    field: Field
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TimeCompare:
    """``field before T`` / ``field since T`` on a date or datetime property."""

    field: Field
    op: TimeOp
    value: TimeLit
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class AgoCompare:
    """``field in last D`` / ``more than D ago`` / ``less than D ago``."""

    field: Field
    op: AgoOp
    duration: Duration
    span: Span = _span()


Comparison: TypeAlias = Compare | InList | Between | TextMatch | IsSet | TimeCompare | AgoCompare


@dataclass(frozen=True, slots=True)
class PredAnd:
    operands: tuple[Pred, ...]
    style: Literal["and", "all_of"] = "and"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PredOr:
    operands: tuple[Pred, ...]
    style: Literal["or", "any_of"] = "or"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PredNot:
    operand: Pred
    span: Span = _span()


Pred: TypeAlias = Comparison | PredAnd | PredOr | PredNot


# --------------------------------------------------------------------------- event conditions


@dataclass(frozen=True, slots=True)
class EventSel:
    """Event types: one name, a parenthesised list, or ``anything`` (``types=None``)."""

    types: tuple[str, ...] | None
    span: Span = _span()


CountOp = Literal["at_least", "at_most", "exactly", "between"]


@dataclass(frozen=True, slots=True)
class Count:
    """``at least N times`` etc.  ``high`` is set only for ``between N and M times``."""

    op: CountOp
    n: int
    high: int | None = None
    span: Span = _span()


WindowKind = Literal[
    "last",  # in last N UNIT: now - N UNIT < ts <= now
    "since",  # T <= ts <= now
    "before",  # ts < T
    "between",  # T1 <= ts <= T2 (a date T2 covers its whole day)
    "on",  # that whole day
    "today",
    "yesterday",
    "this_week",
    "this_month",
    "last_week",
    "last_month",
]


@dataclass(frozen=True, slots=True)
class Window:
    kind: WindowKind
    duration: Duration | None = None  # kind == "last"
    start: TimeLit | None = None  # since, between, on (a DateLit)
    end: TimeLit | None = None  # before, between
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Did:
    """``did E [where P] [COUNT] [WINDOW]``; ``count`` None means at least once."""

    events: EventSel
    where: Pred | None = None
    count: Count | None = None
    window: Window | None = None
    span: Span = _span()


AggFunc = Literal["sum", "avg", "min", "max", "count_distinct"]


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``AGG(prop) of E [where P] [WINDOW] OP value``."""

    func: AggFunc
    field: Field
    events: EventSel
    where: Pred | None
    window: Window | None
    op: CompareOp
    value: NumberLit
    span: Span = _span()


RecencyKind = Literal["more_than_ago", "less_than_ago", "in_last", "before", "since", "between"]


@dataclass(frozen=True, slots=True)
class Recency:
    kind: RecencyKind
    duration: Duration | None = None  # more_than_ago, less_than_ago, in_last
    start: TimeLit | None = None  # since, between
    end: TimeLit | None = None  # before, between
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class LastFirst:
    """``last E [where P] RECENCY`` / ``first E [where P] RECENCY``."""

    which: Literal["last", "first"]
    events: EventSel
    where: Pred | None
    recency: Recency
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Sequence:
    """``did E1 [where P1] then [not] E2 [where P2] within D [WINDOW]``."""

    first: EventSel
    first_where: Pred | None
    then_not: bool
    second: EventSel
    second_where: Pred | None
    within: Duration
    window: Window | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ProfileCond:
    """A profile predicate used as a condition (``city = "Milan"``)."""

    pred: Comparison
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class InSegment:
    name: str
    span: Span = _span()


# --------------------------------------------------------------------------- boolean conditions


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Cond, ...]
    style: Literal["and", "all_of"] = "and"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Cond, ...]
    style: Literal["or", "any_of"] = "or"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Not:
    operand: Cond
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Rule:
    """``rule "label" ( C )``: C with a name that explain reports."""

    label: str
    cond: Cond
    span: Span = _span()


Cond: TypeAlias = (
    Did | Aggregate | LastFirst | Sequence | ProfileCond | InSegment | And | Or | Not | Rule
)


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True, slots=True)
class Segment:
    name: str
    cond: Cond
    timezone: str | None = None  # None: not written, the default UTC
    span: Span = _span()
    name_span: Span = _span()  # the name as written
    timezone_span: Span = _span()  # the time zone string, when written

    @property
    def tz_name(self) -> str:
        return self.timezone or "UTC"


@dataclass(frozen=True, slots=True)
class Ref:
    """``profile.x`` or ``event.x`` in an action argument."""

    scope: Scope
    path: tuple[str, ...]
    span: Span = _span()

    @property
    def name(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class MapValue:
    """``{key: value, ...}`` in an action argument; keys keep their order."""

    items: tuple[tuple[str, Value], ...]
    span: Span = _span()


Value: TypeAlias = Literal_ | Ref | MapValue


@dataclass(frozen=True, slots=True)
class Arg:
    """``key: value``, or a positional ``value`` (``key`` None)."""

    key: str | None
    value: Value
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Action:
    """``name(args)``: send_email, webhook, add_tag, set, enter_journey (checked later)."""

    name: str
    args: tuple[Arg, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class OncePerContact:
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class AtMostOncePer:
    """``at most once per D per contact``."""

    duration: Duration
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Delay:
    duration: Duration
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class UseDnd:
    policy: str
    span: Span = _span()


TriggerOption: TypeAlias = OncePerContact | AtMostOncePer | Delay | UseDnd


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    events: EventSel
    where: Pred | None
    condition: Cond | None  # the `if`
    actions: tuple[Action, ...]
    options: tuple[TriggerOption, ...] = ()
    timezone: str | None = None  # None: not written, the default UTC
    span: Span = _span()
    name_span: Span = _span()  # the name as written
    timezone_span: Span = _span()  # the time zone string, when written

    @property
    def tz_name(self) -> str:
        return self.timezone or "UTC"


@dataclass(frozen=True, slots=True)
class Cap:
    """``max N per [K] UNIT``: at most N deliveries in any rolling K UNIT."""

    max: int
    per: Duration
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Global:
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ClockTime:
    hour: int
    minute: int
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: ClockTime
    end: ClockTime
    timezone: str | None = None  # None: the policy's time zone
    span: Span = _span()
    timezone_span: Span = _span()


DndItem: TypeAlias = Cap | Channel | Global | QuietHours


@dataclass(frozen=True, slots=True)
class DndPolicy:
    name: str
    items: tuple[DndItem, ...]
    timezone: str | None = None  # None: not written, the default UTC
    span: Span = _span()
    name_span: Span = _span()  # the name as written
    timezone_span: Span = _span()  # the time zone string, when written

    @property
    def tz_name(self) -> str:
        return self.timezone or "UTC"

    @property
    def caps(self) -> tuple[Cap, ...]:
        return tuple(i for i in self.items if isinstance(i, Cap))

    @property
    def is_global(self) -> bool:
        return any(isinstance(i, Global) for i in self.items)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.items if isinstance(i, Channel))

    @property
    def quiet_hours(self) -> QuietHours | None:
        return next((i for i in self.items if isinstance(i, QuietHours)), None)


# Deliveries, plans and journeys live in their own modules, which build on the
# nodes above; they are re-exported here, imported on first use (a segment's
# text needs none of their node classes, each a dataclass made at import).
if TYPE_CHECKING:
    from audience.dsl.ast_journeys import Journey as Journey
    from audience.dsl.ast_sending import DeliveryDef as DeliveryDef
    from audience.dsl.ast_sending import Plan as Plan
    from audience.dsl.ast_sending import Schedule as Schedule

_BLOCKS = {
    "Journey": "audience.dsl.ast_journeys",
    "DeliveryDef": "audience.dsl.ast_sending",
    "Plan": "audience.dsl.ast_sending",
    "Schedule": "audience.dsl.ast_sending",
}


def __getattr__(name: str) -> type:
    module = _BLOCKS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    cls: type = getattr(importlib.import_module(module), name)
    globals()[name] = cls  # a plain lookup from now on
    return cls


Definition: TypeAlias = "Segment | Trigger | DndPolicy | DeliveryDef | Plan | Journey"


@dataclass(frozen=True, slots=True)
class Program:
    """A rules file: definitions in text order, or one bare condition."""

    definitions: tuple[Definition, ...] = ()
    condition: Cond | None = None
    span: Span = _span()
