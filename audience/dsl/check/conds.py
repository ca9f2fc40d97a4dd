"""The walk over conditions and event predicates: each node goes to the
check that knows about it (names, values, structure)."""

from __future__ import annotations

from audience.dsl.ast import (
    Aggregate,
    AgoCompare,
    And,
    Comparison,
    Cond,
    Did,
    Flag,
    InSegment,
    LastFirst,
    Not,
    Or,
    Pred,
    PredAnd,
    PredNot,
    PredOr,
    ProfileCond,
    Rule,
    Sequence,
    TextMatch,
)
from audience.dsl.check.context import Ctx
from audience.dsl.check.names import (
    check_event_sel,
    field_type,
    profile_property_type,
    suggest,
)
from audience.dsl.check.structure import (
    check_count,
    check_duration,
    check_regex,
    check_time_range,
)
from audience.dsl.check.values import a_type, check_builtin_values, check_comparison
from audience.schema import NUMERIC_TYPES


def check_cond(ctx: Ctx, cond: Cond) -> None:
    """Check a segment condition (also a trigger's ``if``): no event is in scope."""
    match cond:
        case And(operands) | Or(operands):
            for c in operands:
                check_cond(ctx, c)
        case Not(operand):
            check_cond(ctx, operand)
        case Rule(_, inner):
            check_cond(ctx, inner)
        case Did():
            types = check_event_sel(ctx, cond.events)
            check_pred(ctx, cond.where, types)
            check_count(ctx, cond.count)
            if cond.window is not None:
                check_time_range(ctx, cond.window)
        case Aggregate():
            _check_aggregate(ctx, cond)
        case LastFirst():
            types = check_event_sel(ctx, cond.events)
            check_pred(ctx, cond.where, types)
            check_time_range(ctx, cond.recency)
        case Sequence():
            check_pred(ctx, cond.first_where, check_event_sel(ctx, cond.first))
            check_pred(ctx, cond.second_where, check_event_sel(ctx, cond.second))
            check_duration(ctx, cond.within)
            if cond.window is not None:
                check_time_range(ctx, cond.window)
        case ProfileCond(pred):
            _check_profile_pred(ctx, pred)
        case InSegment():
            pass  # references are resolved together, in refs.py


def _check_aggregate(ctx: Ctx, agg: Aggregate) -> None:
    types = check_event_sel(ctx, agg.events)
    ftype = field_type(ctx, agg.field, types)
    if agg.func != "count_distinct" and ftype is not None and ftype not in NUMERIC_TYPES:
        ctx.error(
            "non_numeric_aggregate",
            f"{agg.func}() needs a numeric property, but '{agg.field.name}' is {a_type(ftype)}",
            agg.field.span,
            "use count_distinct() for a property that is not a number",
        )
    check_pred(ctx, agg.where, types)
    if agg.window is not None:
        check_time_range(ctx, agg.window)


def _check_profile_pred(ctx: Ctx, pred: Comparison) -> None:
    f = pred.field
    _check_shape(ctx, pred)
    if f.scope == "event":
        ctx.error(
            "event_outside_trigger",
            f"'event.{f.name}' has no event here: only a trigger's 'where' and actions have one",
            f.span,
            "to test the contact's events, write 'did EVENT where ...'",
        )
        return
    if isinstance(pred, Flag):
        _check_flag(ctx, pred)
        return
    check_comparison(ctx, pred, profile_property_type(ctx, f.name, f.span))


# A comparison to show for a property of each type that is not a condition alone.
_EXAMPLES = {
    "string": '{} = "..."',
    "int": "{} > 0",
    "float": "{} > 0",
    "date": "{} in last 30 days",
    "datetime": "{} in last 30 days",
    "list<string>": '{} contains "..."',
}


def _check_flag(ctx: Ctx, pred: Flag) -> None:
    """A name alone is a condition only when it is a bool profile property."""
    f = pred.field
    if ctx.schema is None:
        return
    ftype = "string" if f.name == "contact_id" else ctx.schema.profile.get(f.name)
    if ftype is None:
        if f.name in ctx.schema.events:
            help_: str | None = f"to test the contact's events, write 'did {f.name}'"
        else:
            help_ = suggest(f.name, ctx.schema.profile, "profile properties")
        ctx.error(
            "unknown_profile_property",
            f"unknown profile property '{f.name}' (a name alone is a condition "
            "when it is a bool property)",
            f.span,
            help_,
        )
    elif ftype != "bool":
        example = _EXAMPLES.get(ftype, "{} is set").format(f.name)
        ctx.error(
            "not_a_condition",
            f"'{f.name}' is {a_type(ftype)} property; a condition needs a comparison "
            f"such as {example}",
            f.span,
            f"only a bool property is a condition alone; "
            f"'{f.name} is set' tests that it has a value",
        )


def check_pred(ctx: Ctx, pred: Pred | None, types: tuple[str, ...] | None) -> None:
    """Check an event predicate over the selected event types (None: any type)."""
    match pred:
        case None:
            return
        case PredAnd(operands) | PredOr(operands):
            for p in operands:
                check_pred(ctx, p, types)
        case PredNot(operand):
            check_pred(ctx, operand, types)
        case _:
            _check_shape(ctx, pred)
            check_comparison(ctx, pred, field_type(ctx, pred.field, types))
            check_builtin_values(ctx, pred.field, pred)


def _check_shape(ctx: Ctx, pred: Comparison) -> None:
    """What a comparison must satisfy whatever the schema."""
    if isinstance(pred, TextMatch):
        check_regex(ctx, pred)
    elif isinstance(pred, AgoCompare):
        check_duration(ctx, pred.duration)
