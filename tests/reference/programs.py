"""Random valid segment conditions over a schema (hypothesis strategies).

Every construct of SPEC 3 appears: ``did`` with every COUNT and WINDOW, the
aggregates, ``last``/``first`` with every RECENCY, ``then`` / ``then not``,
profile predicates with every operator of 3.3, ``in segment``, and the
booleans (``and``/``or``/``not``, ``all of``/``any of``, ``rule``).

Programs stay inside what the compiler accepts: an event predicate names a
property declared, with one type, by every selected event type (``anything``
only reaches ``type``, ``context``, ``ts`` and ``profile.x``); an operator is
used only on the types it is defined for; literals have the property's type;
``between`` bounds are ordered.  Literals come from ``vocab`` (the stores'
pools), so predicates are often true and times often fall on window bounds.
Left out on purpose (their meaning is one of the evaluator's documented
choices, not the SPEC's): operators other than ``contains``/``is set`` on
lists, ``count_distinct`` over lists, date properties against datetime
literals, and aggregates over ``profile.x``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import reduce
from typing import Literal

from hypothesis import strategies as st

from audience.dsl.ast import (
    AggFunc,
    Aggregate,
    AgoCompare,
    AgoOp,
    And,
    Between,
    BoolLit,
    Compare,
    CompareOp,
    Comparison,
    Cond,
    Count,
    CountOp,
    DateLit,
    DateTimeLit,
    Did,
    EventSel,
    Field,
    Flag,
    InList,
    InSegment,
    IsSet,
    LastFirst,
    Literal_,
    Not,
    NumberLit,
    Or,
    Pred,
    PredAnd,
    PredNot,
    PredOr,
    ProfileCond,
    Recency,
    RecencyKind,
    Rule,
    Segment,
    Sequence,
    StringLit,
    TextMatch,
    TextOp,
    TimeCompare,
    TimeLit,
    TimeOp,
    Window,
)
from audience.schema import CONTEXTS, Schema

from .timewin import lit_instant, zone
from .vocab import (
    DURATIONS,
    FLOATS,
    INTS,
    LIST_ELEMENTS,
    REGEXES,
    TEST_SCHEMA,
    literal_dates,
    literal_instants,
    strings_for,
)

Draw = st.DrawFn
CALENDAR = ("today", "yesterday", "this_week", "this_month", "last_week", "last_month")
OFFSETS = (dt.UTC, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=-5)))
LABELS = ("Clicked", "No purchase", "Clicked")  # a label may repeat
COMPARE_OPS: tuple[CompareOp, ...] = ("=", "!=", "<", "<=", ">", ">=")
TEXT_OPS: tuple[TextOp, ...] = ("contains", "starts_with", "ends_with", "matches")
TIME_OPS: tuple[TimeOp, ...] = ("before", "since")
AGO_OPS: tuple[AgoOp, ...] = ("more_than_ago", "less_than_ago", "in_last")
COUNT_OPS: tuple[CountOp, ...] = ("at_least", "at_most", "exactly")
RECENCY_KINDS: tuple[RecencyKind, ...] = (*AGO_OPS, "before", "since", "between")
AGG_FUNCS: tuple[AggFunc, ...] = ("sum", "avg", "min", "max", "count_distinct")


@dataclass(frozen=True)
class GeneratedProgram:
    """A condition wrapped as a segment (its time zone) and the saved segments
    it may reference with ``in segment`` (acyclic)."""

    segment: Segment
    saved: dict[str, Segment]


# --------------------------------------------------------------------------- literals


def time_lit(draw: Draw, tz: str, *, dates_only: bool = False) -> TimeLit:
    """A date (in the definition's zone) or a datetime written with an offset
    or as wall clock in the zone (``fold=0``, as the parser reads it)."""
    if dates_only or draw(st.integers(0, 2)) == 0:
        return DateLit(draw(st.sampled_from(literal_dates())), zone(tz))
    instant = draw(st.sampled_from(literal_instants()))
    if draw(st.booleans()):
        return DateTimeLit(instant.astimezone(draw(st.sampled_from(OFFSETS))))
    return DateTimeLit(instant.astimezone(zone(tz)).replace(fold=0))


def _ordered(draw: Draw, tz: str, dates_only: bool = False) -> tuple[TimeLit, TimeLit]:
    a, b = time_lit(draw, tz, dates_only=dates_only), time_lit(draw, tz, dates_only=dates_only)
    return (a, b) if lit_instant(a) <= lit_instant(b) else (b, a)


def _strings(schema: Schema, f: Field) -> tuple[str, ...]:
    if f.scope == "event" and f.name == "type":
        return tuple(schema.events)
    if f.scope == "event" and f.name == "context":
        return CONTEXTS
    return strings_for(f.name)


def _string(draw: Draw, schema: Schema, f: Field) -> str:
    return draw(st.sampled_from(_strings(schema, f)))


def _value(draw: Draw, schema: Schema, f: Field, ftype: str, tz: str) -> Literal_:
    if ftype == "string":
        return StringLit(_string(draw, schema, f))
    if ftype == "int":
        return NumberLit(draw(st.sampled_from(INTS)))
    if ftype == "float":
        return NumberLit(draw(st.sampled_from((*FLOATS, 1, 50))))
    if ftype == "bool":
        return BoolLit(draw(st.booleans()))
    return time_lit(draw, tz, dates_only=ftype == "date")


# --------------------------------------------------------------------------- predicates


def comparison(draw: Draw, schema: Schema, f: Field, ftype: str, tz: str) -> Comparison:
    """One comparison of SPEC 3.3 that is valid for a field of ``ftype``."""
    kinds = ["compare", "in", "between", "is_set"]
    if ftype == "string":
        kinds += ["text", "text"]
    elif ftype in ("date", "datetime"):
        kinds += ["time", "ago", "ago"]
    elif ftype == "bool":
        kinds = ["compare", "is_set"]
    elif ftype == "list<string>":
        kinds = ["contains", "contains", "is_set"]
    kind = draw(st.sampled_from(kinds))
    if kind == "is_set":
        return IsSet(f, negated=draw(st.booleans()))
    if kind == "contains":
        return TextMatch(f, "contains", StringLit(draw(st.sampled_from(LIST_ELEMENTS))))
    if kind == "compare":
        ops = COMPARE_OPS[:2] if ftype == "bool" else COMPARE_OPS
        return Compare(f, draw(st.sampled_from(ops)), _value(draw, schema, f, ftype, tz))
    if kind == "in":
        n = draw(st.integers(1, 3))
        values = tuple(_value(draw, schema, f, ftype, tz) for _ in range(n))
        return InList(f, values, negated=draw(st.booleans()))
    if kind == "between":
        if ftype in ("date", "datetime"):
            low_t, high_t = _ordered(draw, tz, dates_only=ftype == "date")
            return Between(f, low_t, high_t)
        a, b = _value(draw, schema, f, ftype, tz), _value(draw, schema, f, ftype, tz)
        assert isinstance(a, StringLit | NumberLit) and isinstance(b, StringLit | NumberLit)
        low, high = (a, b) if a.value <= b.value else (b, a)  # type: ignore[operator]
        return Between(f, low, high)
    if kind == "text":
        op = draw(st.sampled_from(TEXT_OPS))
        if op == "matches":
            return TextMatch(f, op, StringLit(draw(st.sampled_from(REGEXES))))
        s = _string(draw, schema, f)
        cut = draw(st.integers(0, len(s)))
        return TextMatch(f, op, StringLit(s[cut:] if op == "ends_with" else s[:cut]))
    if kind == "time":
        return TimeCompare(
            f, draw(st.sampled_from(TIME_OPS)), time_lit(draw, tz, dates_only=ftype == "date")
        )
    return AgoCompare(f, draw(st.sampled_from(AGO_OPS)), draw(st.sampled_from(DURATIONS)))


def _common_props(schema: Schema, sel: EventSel) -> dict[str, str]:
    """Properties every selected type declares, with the same type."""
    types = list(schema.events) if sel.types is None else list(sel.types)
    shared = [schema.events[t] for t in types]
    names = reduce(lambda a, b: a & b, (set(p) for p in shared)) if shared else set()
    return {n: shared[0][n] for n in sorted(names) if all(p[n] == shared[0][n] for p in shared)}


def event_fields(schema: Schema, sel: EventSel) -> list[tuple[Field, str]]:
    out = [(Field("event", (n,)), t) for n, t in _common_props(schema, sel).items()]
    out += [(Field("event", ("type",)), "string"), (Field("event", ("context",)), "string")]
    out += [(Field("event", ("ts",)), "datetime")]
    out += [(Field("profile", tuple(n.split("."))), t) for n, t in schema.profile.items()]
    return out


def predicate(draw: Draw, schema: Schema, sel: EventSel, tz: str, depth: int = 2) -> Pred:
    """An event predicate (``where``) over the fields ``sel`` allows."""
    kind = draw(st.integers(0, 5)) if depth > 0 else 0
    if kind <= 2:
        f, ftype = draw(st.sampled_from(event_fields(schema, sel)))
        return comparison(draw, schema, f, ftype, tz)
    if kind == 3:
        return PredNot(predicate(draw, schema, sel, tz, depth - 1))
    operands = tuple(
        predicate(draw, schema, sel, tz, depth - 1) for _ in range(draw(st.integers(2, 3)))
    )
    if kind == 4:
        return PredAnd(operands, style=draw(st.sampled_from(("and", "all_of"))))
    return PredOr(operands, style=draw(st.sampled_from(("or", "any_of"))))


# --------------------------------------------------------------------------- event conditions


def event_sel(draw: Draw, schema: Schema) -> EventSel:
    types = list(schema.events)
    kind = draw(st.integers(0, 3))
    if kind == 3:
        return EventSel(None)
    if kind == 2 and len(types) > 1:
        chosen = draw(st.lists(st.sampled_from(types), min_size=2, max_size=3, unique=True))
        return EventSel(tuple(chosen))
    return EventSel((draw(st.sampled_from(types)),))


def window(draw: Draw, tz: str) -> Window | None:
    kind = draw(st.sampled_from(("none", "last", "last", "since", "before", "between", "on")))
    if kind == "none":
        return None
    if kind == "last":
        if draw(st.integers(0, 3)) == 0:
            return Window(draw(st.sampled_from(CALENDAR)))
        return Window("last", duration=draw(st.sampled_from(DURATIONS)))
    if kind == "since":
        return Window("since", start=time_lit(draw, tz))
    if kind == "before":
        return Window("before", end=time_lit(draw, tz))
    if kind == "between":
        low, high = _ordered(draw, tz)
        return Window("between", start=low, end=high)
    return Window("on", start=time_lit(draw, tz, dates_only=True))


def count(draw: Draw) -> Count | None:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return None
    n = draw(st.integers(0, 3))
    if kind == 4:
        return Count("between", n, n + draw(st.integers(0, 2)))
    return Count(COUNT_OPS[kind - 1], n)


def recency(draw: Draw, tz: str) -> Recency:
    kind = draw(st.sampled_from(RECENCY_KINDS))
    if kind in AGO_OPS:
        return Recency(kind, duration=draw(st.sampled_from(DURATIONS)))
    if kind == "before":
        return Recency("before", end=time_lit(draw, tz))
    if kind == "since":
        return Recency("since", start=time_lit(draw, tz))
    low, high = _ordered(draw, tz)
    return Recency("between", start=low, end=high)


def _where(draw: Draw, schema: Schema, sel: EventSel, tz: str, one_in: int = 2) -> Pred | None:
    """A ``where`` predicate one time in ``one_in`` (they narrow matches fast)."""
    return predicate(draw, schema, sel, tz) if draw(st.integers(1, one_in)) == 1 else None


def _numeric_targets(schema: Schema) -> list[tuple[EventSel, str]]:
    """(selection, numeric property) pairs for sum/avg/min/max: each type and
    each pair of types that share a numeric property."""
    out: list[tuple[EventSel, str]] = []
    types = list(schema.events)
    sels = [EventSel((t,)) for t in types]
    sels += [EventSel((a, b)) for i, a in enumerate(types) for b in types[i + 1 :]]
    for sel in sels:
        props = _common_props(schema, sel)
        out += [(sel, n) for n, t in props.items() if t in ("int", "float")]
    return out


def aggregate(draw: Draw, schema: Schema, tz: str) -> Aggregate:
    func = draw(st.sampled_from(AGG_FUNCS))
    targets = _numeric_targets(schema)
    if func != "count_distinct" and targets:
        sel, name = draw(st.sampled_from(targets))
        value: int | float = draw(st.sampled_from((*FLOATS, *INTS, 20.0, 30.0)))
    else:
        func = "count_distinct"
        sel = event_sel(draw, schema)
        props = _common_props(schema, sel)
        names = [n for n, t in props.items() if t != "list<string>"] + ["type", "context", "ts"]
        name = draw(st.sampled_from(names))
        value = draw(st.integers(0, 3))
    return Aggregate(
        func,
        Field("event", (name,)),
        sel,
        _where(draw, schema, sel, tz, 3),
        window(draw, tz),
        draw(st.sampled_from(COMPARE_OPS)),
        NumberLit(value),
    )


def leaf(draw: Draw, schema: Schema, tz: str, segment_names: tuple[str, ...]) -> Cond:
    kinds = ["did", "did", "agg", "lastfirst", "seq", "profile", "profile"]
    if segment_names:
        kinds.append("segment")
    kind = draw(st.sampled_from(kinds))
    if kind == "did":
        sel = event_sel(draw, schema)
        where = _where(draw, schema, sel, tz)
        return Did(sel, where, count(draw), window(draw, tz))
    if kind == "agg":
        return aggregate(draw, schema, tz)
    if kind == "lastfirst":
        sel = event_sel(draw, schema)
        which: Literal["last", "first"] = "last" if draw(st.booleans()) else "first"
        return LastFirst(which, sel, _where(draw, schema, sel, tz), recency(draw, tz))
    if kind == "seq":
        first, second = event_sel(draw, schema), event_sel(draw, schema)
        return Sequence(
            first,
            _where(draw, schema, first, tz, 4),
            draw(st.booleans()),
            second,
            _where(draw, schema, second, tz, 4),
            draw(st.sampled_from(DURATIONS)),
            window(draw, tz),
        )
    if kind == "segment":
        return InSegment(draw(st.sampled_from(segment_names)))
    name, ftype = draw(st.sampled_from(sorted(schema.profile.items())))
    scope_written = tuple(name.split("."))
    f = Field("profile", scope_written)
    if ftype == "bool" and draw(st.booleans()):
        return ProfileCond(Flag(f))  # `newsletter` alone (SPEC 3.3)
    return ProfileCond(comparison(draw, schema, f, ftype, tz))


@st.composite
def conditions(
    draw: Draw,
    schema: Schema = TEST_SCHEMA,
    timezone: str = "UTC",
    *,
    max_depth: int = 3,
    segment_names: tuple[str, ...] = (),
) -> Cond:
    """A random valid condition; time literals are read in ``timezone``."""
    return _cond(draw, schema, timezone, max_depth, segment_names)


def _cond(draw: Draw, schema: Schema, tz: str, depth: int, names: tuple[str, ...]) -> Cond:
    kind = draw(st.integers(0, 6)) if depth > 0 else 0
    if kind <= 2:
        return leaf(draw, schema, tz, names)
    if kind == 3:
        return Not(_cond(draw, schema, tz, depth - 1, names))
    if kind == 4:
        return Rule(draw(st.sampled_from(LABELS)), _cond(draw, schema, tz, depth - 1, names))
    operands = tuple(
        _cond(draw, schema, tz, depth - 1, names) for _ in range(draw(st.integers(2, 3)))
    )
    if kind == 5:
        return And(operands, style=draw(st.sampled_from(("and", "all_of"))))
    return Or(operands, style=draw(st.sampled_from(("or", "any_of"))))


@st.composite
def segments_for(
    draw: Draw, schema: Schema = TEST_SCHEMA, *, max_segments: int = 3
) -> dict[str, Segment]:
    """Saved segments for ``in segment``: each may reference only the ones
    before it, so there is no cycle; each has its own time zone."""
    out: dict[str, Segment] = {}
    for i in range(draw(st.integers(0, max_segments))):
        tz = draw(st.sampled_from((None, "Europe/Rome")))
        cond = _cond(draw, schema, tz or "UTC", 2, tuple(out))
        out[f"Saved {i}"] = Segment(f"Saved {i}", cond, timezone=tz)
    return out


@st.composite
def programs(
    draw: Draw, schema: Schema = TEST_SCHEMA, *, max_depth: int = 3, max_saved: int = 3
) -> GeneratedProgram:
    """A segment (random time zone) plus the saved segments it may reference
    (``max_saved=0``: none, so no ``in segment``)."""
    saved = draw(segments_for(schema, max_segments=max_saved))
    tz = draw(st.sampled_from((None, "Europe/Rome")))
    cond = _cond(draw, schema, tz or "UTC", max_depth, tuple(saved))
    return GeneratedProgram(Segment("Generated", cond, timezone=tz), saved)
