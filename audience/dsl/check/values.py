"""Fitting values and operators to property types (docs/language/values.md): a value of the
wrong type (``amount = "abc"``, ``city > 3``) is an error at compile time."""

from __future__ import annotations

import json

from audience.dsl.ast import (
    AgoCompare,
    Between,
    BoolLit,
    Compare,
    Comparison,
    DateLit,
    DateTimeLit,
    Field,
    InList,
    IsSet,
    Literal_,
    NumberLit,
    StringLit,
    TextMatch,
    TimeCompare,
)
from audience.dsl.check.context import Ctx
from audience.dsl.check.names import suggest
from audience.dsl.check.structure import is_empty_range
from audience.schema import CONTEXTS, NUMERIC_TYPES, TIME_TYPES

OP_TEXT = {
    "starts_with": "starts with",
    "ends_with": "ends with",
    "more_than_ago": "more than ... ago",
    "less_than_ago": "less than ... ago",
    "in_last": "in last",
}


def kind_of(lit: Literal_) -> str:
    """What a literal is, in the words of a message."""
    if isinstance(lit, StringLit):
        return "a string"
    if isinstance(lit, BoolLit):
        return "a boolean"
    if isinstance(lit, NumberLit):
        return "a number"
    if isinstance(lit, DateLit):
        return "a date"
    return "a date and time"


def show(lit: Literal_) -> str:
    """A literal roughly as it is written."""
    if isinstance(lit, StringLit):
        return json.dumps(lit.value, ensure_ascii=False)
    if isinstance(lit, BoolLit):
        return "true" if lit.value else "false"
    if isinstance(lit, DateLit | DateTimeLit):
        return lit.value.isoformat()
    return str(lit.value)


def a_type(ftype: str) -> str:
    """``ftype`` with its article: "an int", "a string"."""
    return f"an {ftype}" if ftype[0] in "aeiou" else f"a {ftype}"


def fits(lit: Literal_, ftype: str) -> bool:
    if ftype == "string":
        return isinstance(lit, StringLit)
    if ftype in NUMERIC_TYPES:
        return isinstance(lit, NumberLit)
    if ftype == "bool":
        return isinstance(lit, BoolLit)
    if ftype in TIME_TYPES:
        return isinstance(lit, DateLit | DateTimeLit)
    return False  # list<string>: no literal is a list


def compatible(a: str, b: str) -> bool:
    """Whether a value of type ``b`` can stand where type ``a`` is expected."""
    return a == b or {a, b} <= NUMERIC_TYPES or {a, b} <= TIME_TYPES


def _hint(lit: Literal_, ftype: str) -> str | None:
    if ftype == "string":
        return f"write it as a string: {json.dumps(show(lit))}"
    if ftype in NUMERIC_TYPES and isinstance(lit, StringLit):
        try:
            float(lit.value)
        except ValueError:
            return None
        return f"write the number without quotes: {lit.value.strip()}"
    if ftype == "bool":
        return "write true or false, without quotes"
    if ftype in TIME_TYPES:
        return "write a date or time without quotes, such as 2026-11-01 or 2026-11-01T18:30"
    return None


def check_value(ctx: Ctx, name: str, ftype: str, lit: Literal_) -> None:
    """Report ``lit`` when it does not fit property ``name`` of type ``ftype``."""
    if not fits(lit, ftype):
        ctx.error(
            "type_mismatch",
            f"'{name}' is {a_type(ftype)} property, but {show(lit)} is {kind_of(lit)}",
            lit.span,
            _hint(lit, ftype),
        )


def _op_name(pred: Comparison) -> str:
    if isinstance(pred, Compare):
        return pred.op
    if isinstance(pred, InList):
        return "not in" if pred.negated else "in"
    if isinstance(pred, Between):
        return "between"
    if isinstance(pred, IsSet):
        return "is not set" if pred.negated else "is set"
    return OP_TEXT.get(pred.op, pred.op)


def _operator_fits(pred: Comparison, ftype: str) -> str | None:
    """None when the operator applies to ``ftype``, else what it needs."""
    if isinstance(pred, IsSet):
        return None
    if ftype == "list<string>":
        # `tags in ("a", "b")`: some element is one of them (as the compiler reads it)
        element = isinstance(pred, TextMatch) and pred.op == "contains"
        return None if element or (isinstance(pred, InList) and not pred.negated) else "a scalar"
    if isinstance(pred, TextMatch):
        return None if ftype == "string" else "a string or list<string>"
    if isinstance(pred, TimeCompare | AgoCompare):
        return None if ftype in TIME_TYPES else "a date or datetime"
    ordered = isinstance(pred, Between) or (
        isinstance(pred, Compare) and pred.op not in ("=", "!=")
    )
    if ordered and ftype == "bool":
        return "an ordered (non-boolean)"
    return None


def check_comparison(ctx: Ctx, pred: Comparison, ftype: str | None) -> None:
    """Operator and values of one comparison against its field's type (None: unknown)."""
    f = pred.field
    if isinstance(pred, Between):
        _check_between_order(ctx, pred)
    if ftype is None:
        return
    need = _operator_fits(pred, ftype)
    if need is not None:
        help_ = (
            "use 'contains', 'in (...)', 'is set' or 'is not set'"
            if ftype == "list<string>"
            else None
        )
        ctx.error(
            "type_mismatch",
            f"'{_op_name(pred)}' needs {need} property, but '{f.name}' is {a_type(ftype)}",
            f.span,
            help_,
        )
        return
    if isinstance(pred, Compare):
        check_value(ctx, f.name, ftype, pred.value)
    elif isinstance(pred, InList):
        element = "string" if ftype == "list<string>" else ftype
        for v in pred.values:
            check_value(ctx, f.name, element, v)
    elif isinstance(pred, Between):
        check_value(ctx, f.name, ftype, pred.low)
        check_value(ctx, f.name, ftype, pred.high)


def _check_between_order(ctx: Ctx, pred: Between) -> None:
    low, high = pred.low, pred.high
    empty = False
    if isinstance(low, NumberLit) and isinstance(high, NumberLit):
        empty = low.value > high.value
    elif isinstance(low, DateLit | DateTimeLit) and isinstance(high, DateLit | DateTimeLit):
        empty = is_empty_range(low, high)
    elif isinstance(low, StringLit) and isinstance(high, StringLit):
        empty = low.value > high.value
    if empty:
        ctx.error(
            "invalid_range",
            f"the range is empty: {show(low)} is greater than {show(high)}",
            pred.span,
            "write the smaller value first",
        )


def check_builtin_values(ctx: Ctx, f: Field, pred: Comparison) -> None:
    """``context`` must be one of CONTEXTS; ``type`` one of the schema's event types."""
    if f.scope != "event" or f.name not in ("context", "type"):
        return
    if isinstance(pred, Compare):
        values: tuple[Literal_, ...] = (pred.value,)
    elif isinstance(pred, InList):
        values = pred.values
    else:
        return
    for v in values:
        if not isinstance(v, StringLit):
            continue  # a type mismatch, reported by check_comparison
        if f.name == "context" and v.value not in CONTEXTS:
            ctx.error(
                "unknown_context",
                f"unknown context '{v.value}'",
                v.span,
                suggest(v.value, CONTEXTS, "contexts"),
            )
        elif f.name == "type" and ctx.schema is not None and v.value not in ctx.schema.events:
            ctx.error(
                "unknown_event_type",
                f"unknown event type '{v.value}'",
                v.span,
                suggest(v.value, ctx.schema.events, "event types"),
            )
